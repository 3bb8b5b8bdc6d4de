// End-to-end serving benchmarks over gRPC on 127.0.0.1, server in-process.
//
//   serve_bench --mode throughput --model efficientnet_b0 --batch 8 --concurrency 24 --seconds 10
//     The raw engine's img/s at batch B (CompiledModel::Run in a loop) and the server's img/s
//     with the batcher set to batch B and C concurrent Classify calls carrying FLOAT32 tensors
//     (--dtype float16: FLOAT16; no decoding), measured in alternating windows (--rounds): the
//     ratio is what batching, gRPC and the request pipeline cost.
//   serve_bench --mode overload --rate 60 --budget-ms 100 --seconds 20
//     The three default models; open-loop Poisson arrivals at R requests/s, each with a
//     deadline of the budget. Run twice: pinned to convnext_tiny, then with the `balanced`
//     policy. Prints the share answered OK within the budget (goodput) and the variant mix.
//
// The load generator shares the machine's cores with the server, as most of our tests do.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "engine/executor.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "models/catalog.h"
#include "models/zoo.h"
#include "server/flags.h"
#include "server/preprocess/half.h"
#include "server/server.h"
#include "vision_service.grpc.pb.h"

namespace visionserve {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Preprocessed tensors, FLOAT32 or (half = true) FLOAT16.
std::string FloatTensorRequest(int size, uint32_t seed, int images = 1, bool half = false) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2, 2);
  std::vector<float> v(static_cast<size_t>(size) * size * 3);
  for (float& x : v) x = u(rng);
  v1::ClassifyRequest req;
  for (int i = 0; i < images; ++i) {
    v1::RawTensor* t = req.add_images()->mutable_tensor();
    for (int64_t d : {size, size, 3}) t->add_shape(d);
    if (half) {
      t->set_dtype(v1::RawTensor::FLOAT16);
      t->set_data(preprocess::FloatsToHalfBytes(v));
    } else {
      t->set_dtype(v1::RawTensor::FLOAT32);
      t->set_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
    }
  }
  return req.SerializeAsString();
}

// The raw engine at one batch size (CompiledModel::Run in a loop on one input), compiled once
// and measured in windows between the served windows.
class RawEngine {
 public:
  RawEngine(const std::string& model, int batch) : batch_(batch) {
    auto graph = models::BuildModel(model);
    if (!graph.ok()) {
      std::fprintf(stderr, "%s\n", graph.status().ToString().c_str());
      std::exit(1);
    }
    engine::CompileOptions o;
    o.batch_sizes = {batch};
    auto m = engine::CompiledModel::Create(std::move(*graph), o);
    if (!m.ok()) {
      std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
      std::exit(1);
    }
    model_ = std::move(*m);
    in_.assign(batch * model_->input_dims().elements(), 0.5f);
    out_.resize(batch * model_->output_dims().elements());
  }

  // Images/s over `seconds`, after two warm-up runs.
  double Measure(double seconds) {
    for (int i = 0; i < 2; ++i) (void)model_->Run(batch_, in_, out_);
    int64_t images = 0;
    const auto t0 = Clock::now();
    while (Seconds(t0, Clock::now()) < seconds) {
      (void)model_->Run(batch_, in_, out_);
      images += batch_;
    }
    return images / Seconds(t0, Clock::now());
  }

 private:
  int batch_;
  std::unique_ptr<engine::CompiledModel> model_;
  std::vector<float> in_, out_;
};

// CPU seconds (user + system) of this process's threads, by thread name (/proc/self/task), for
// the breakdown of where a served image's CPU goes. Names are truncated to 15 characters by
// the kernel; digits are dropped so "grpcpp_sync_ser3" and "...ser4" add up.
std::map<std::string, double> ThreadCpuSeconds(const std::string& proc = "/proc/self") {
  std::map<std::string, double> out;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  for (const auto& e : std::filesystem::directory_iterator(proc + "/task")) {
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::string name = line.substr(open + 1, close - open - 1);
    name.erase(
        std::remove_if(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }),
        name.end());
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int k = 3; k <= 15 && rest >> field; ++k) {  // fields 14 and 15: utime, stime
      if (k == 14) utime = std::stod(field);
      if (k == 15) stime = std::stod(field);
    }
    out[name] += (utime + stime) / tick;
  }
  return out;
}

// CPU seconds (user + system) of process `pid` so far.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream stat(absl::StrFormat("/proc/%d/stat", pid));
  std::string line;
  std::getline(stat, line);
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int k = 3; k <= 15 && rest >> field; ++k) {
    if (k == 14) utime = std::stod(field);
    if (k == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The real daemon as a child process: `binary --listen 127.0.0.1:0 --repository repo`; returns
// its pid and address once it prints SERVING (exits the benchmark if it does not).
std::pair<pid_t, std::string> SpawnServer(const std::string& binary, const std::string& repo) {
  int fds[2];
  if (pipe(fds) != 0) std::exit(1);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    execl(binary.c_str(), binary.c_str(), "--listen", "127.0.0.1:0", "--repository", repo.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  FILE* out = fdopen(fds[0], "r");
  std::string address;
  char buf[4096];
  while (fgets(buf, sizeof(buf), out) != nullptr) {
    const std::string line(buf);
    const size_t at = line.find("listening on ");
    if (at != std::string::npos) address = line.substr(at + 13, line.find(' ', at + 13) - at - 13);
    if (line.find("SERVING") != std::string::npos) {
      // Keep draining its output so it never blocks on a full pipe.
      std::thread([out] {
        char b[4096];
        while (fgets(b, sizeof(b), out) != nullptr) {
        }
        fclose(out);
      }).detach();
      return {pid, address};
    }
  }
  std::fprintf(stderr, "%s did not start\n", binary.c_str());
  std::exit(1);
}

// Keeps `concurrency` unary calls in flight for `seconds`; returns images/s answered OK.
// The request is serialized once and sent as the same bytes every time (gRPC's generic API):
// the load generator shares the server's two cores, and re-serializing a 600 KB tensor per
// call would bill the client's work to the server.
struct ClosedLoopResult {
  double img_s = 0;
  double mean_batch = 0;
  double server_cores = 0;  // only with a separate server process
  double client_cores = 0;  // this process's threads (the load generator's, then)
};

ClosedLoopResult ClosedLoop(grpc::GenericStub* stub, const v1::ClassifyRequest& req,
                            int concurrency, double seconds, pid_t server_pid = 0) {
  std::atomic<int64_t> ok{0}, errors{0}, batch_sum{0};
  std::atomic<bool> stop{false};
  std::atomic<int> outstanding{0};
  const std::string bytes = req.SerializeAsString();
  grpc::Slice slice(bytes.data(), bytes.size(), grpc::Slice::STATIC_SLICE);
  const grpc::ByteBuffer request(&slice, 1);
  struct Call {
    grpc::ClientContext ctx;
    grpc::ByteBuffer resp;
  };
  std::function<void()> issue = [&] {
    auto* call = new Call();
    outstanding.fetch_add(1);
    stub->UnaryCall(
        &call->ctx, "/visionserve.v1.VisionService/Classify", grpc::StubOptions(), &request,
        &call->resp, [&, call](grpc::Status s) {
          v1::ClassifyResponse resp;
          if (s.ok() && grpc::GenericDeserialize<grpc::ProtoBufferReader, v1::ClassifyResponse>(
                            &call->resp, &resp)
                            .ok()) {
            ok.fetch_add(resp.results_size());
            for (const auto& r : resp.results()) {
              batch_sum.fetch_add(r.timing().batch_size());
            }
          } else {
            errors.fetch_add(1);
          }
          delete call;
          if (!stop.load()) issue();
          outstanding.fetch_sub(1);
        });
  };
  for (int i = 0; i < concurrency; ++i) issue();
  std::this_thread::sleep_for(
      std::chrono::duration<double>(std::min(2.0, seconds / 4)));  // warm-up
  const int64_t ok0 = ok.load(), b0 = batch_sum.load();
  const auto cpu0 = ThreadCpuSeconds();
  const double server0 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : 0;
  const std::string server_proc = absl::StrFormat("/proc/%d", server_pid);
  const auto scpu0 = server_pid > 0 ? ThreadCpuSeconds(server_proc) : cpu0;
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const int64_t n = ok.load() - ok0;
  const double dt = Seconds(t0, Clock::now());
  const auto cpu1 = ThreadCpuSeconds();
  const double server1 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : 0;
  const auto scpu1 = server_pid > 0 ? ThreadCpuSeconds(server_proc) : cpu1;
  // Where the CPU went, per served image (threads that exited in between are not counted).
  double total = 0;
  for (const auto& [name, sec] : cpu1) {
    auto it = cpu0.find(name);
    total += std::max(0.0, sec - (it == cpu0.end() ? 0.0 : it->second));
  }
  std::string breakdown;  // the server's threads
  for (const auto& [name, sec] : scpu1) {
    auto it = scpu0.find(name);
    const double d = sec - (it == scpu0.end() ? 0.0 : it->second);
    if (d <= 0) continue;
    breakdown += absl::StrFormat(" %s=%.0fus", name, d / std::max<int64_t>(n, 1) * 1e6);
  }
  if (server_pid > 0) {
    const double per = (server1 - server0) / std::max<int64_t>(n, 1);
    std::fprintf(stderr,
                 "cpu per served image: server process %.0f us (%.2f cores), load generator %.0f "
                 "us (%.2f cores); with the cores to itself the server would do ~%.0f img/s; "
                 "server threads:%s\n",
                 per * 1e6, (server1 - server0) / dt, total / std::max<int64_t>(n, 1) * 1e6,
                 total / dt, ((server1 - server0) / dt + total / dt) / per, breakdown.c_str());
  } else {
    std::fprintf(stderr, "cpu per served image: %.0f us (%.2f cores):%s\n",
                 total / std::max<int64_t>(n, 1) * 1e6, total / dt, breakdown.c_str());
  }
  ClosedLoopResult result;
  result.mean_batch = n > 0 ? static_cast<double>(batch_sum.load() - b0) / n : 0;
  result.img_s = n / dt;
  result.client_cores = total / dt;
  result.server_cores = server_pid > 0 ? (server1 - server0) / dt : 0;
  stop.store(true);
  while (outstanding.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (errors.load() > 0) std::fprintf(stderr, "warning: %ld errors\n", long(errors.load()));
  return result;
}

struct OverloadResult {
  int64_t sent = 0, ok_in_budget = 0, late_or_failed = 0;
  std::map<std::string, int64_t> mix;
  std::map<int, int64_t> codes;
};

OverloadResult OpenLoop(v1::VisionService::Stub* stub, v1::ClassifyRequest req, double rate,
                        double budget_ms, double seconds) {
  OverloadResult r;
  absl::Mutex mu;
  std::atomic<int> outstanding{0};
  std::mt19937 rng(42);
  std::exponential_distribution<double> gap(rate);
  const auto t0 = Clock::now();
  auto next = t0;
  while (Seconds(t0, next) < seconds) {
    std::this_thread::sleep_until(next);
    struct Call {
      grpc::ClientContext ctx;
      v1::ClassifyResponse resp;
      Clock::time_point sent;
    };
    auto* call = new Call();
    call->sent = next;  // measured from the intended send time
    call->ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::microseconds(static_cast<int64_t>(budget_ms * 1000)));
    outstanding.fetch_add(1);
    ++r.sent;
    stub->async()->Classify(&call->ctx, &req, &call->resp, [&, call](grpc::Status s) {
      const double ms = Seconds(call->sent, Clock::now()) * 1000;
      {
        absl::MutexLock lock(&mu);
        if (s.ok() && ms <= budget_ms) {
          ++r.ok_in_budget;
          ++r.mix[call->resp.served_by().model()];
        } else {
          ++r.late_or_failed;
          ++r.codes[s.error_code()];
        }
      }
      delete call;
      outstanding.fetch_sub(1);
    });
    next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
  }
  while (outstanding.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return r;
}

std::unique_ptr<Server> StartServer(const std::string& repository) {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.repository = repository;
  auto s = Server::Create(o);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
    std::exit(1);
  }
  (*s)->WaitLoaded();
  if (!(*s)->models().AllReady()) {
    std::fprintf(stderr, "a model failed to load\n");
    std::exit(1);
  }
  return std::move(*s);
}

int Main(int argc, char** argv) {
  KeepFreedMemory();  // as the daemon does (server/server.h)
  std::string mode = "throughput", model = "efficientnet_b0", dtype = "float32";
  int64_t batch = 8, concurrency = 24, images_per_request = 1;
  int64_t rate = 60, budget_ms = 100, seconds = 10, instances = 1, rounds = 4;
  FlagParser flags("serve_bench: serving throughput and overload behaviour over gRPC");
  flags.String("mode", &mode, "throughput or overload");
  flags.String("model", &model, "throughput: zoo variant");
  flags.Int("batch", &batch, "throughput: batch size (engine and batcher)");
  flags.Int("concurrency", &concurrency, "throughput: calls in flight");
  flags.Int("images-per-request", &images_per_request,
            "throughput: images in each Classify call (each is batched on its own)");
  flags.String("dtype", &dtype, "throughput: tensor dtype sent, float32 or float16");
  flags.Int("instances", &instances, "throughput: batches in flight at once (model instances)");
  flags.Int("rate", &rate, "overload: offered requests/s");
  flags.Int("budget-ms", &budget_ms, "overload: per-request deadline");
  flags.Int("seconds", &seconds,
            "measurement time per run (throughput: for each of raw and served, split in rounds)");
  flags.Int("rounds", &rounds, "throughput: alternating raw/served measurement windows");
  std::string server_binary;
  flags.String("server-binary", &server_binary,
               "throughput: run this visionserve binary as a separate process (its CPU is then "
               "reported apart from the load generator's) instead of an in-process server");
  if (std::optional<int> code = flags.ParseOrExitCode(argc, argv, nullptr, "serve_bench")) {
    return *code;
  }
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(-1);

  if (mode == "throughput") {
    if (rounds < 1 || seconds < 1) {
      std::fprintf(stderr, "--rounds and --seconds must be at least 1\n");
      return 2;
    }
    if (dtype != "float32" && dtype != "float16") {
      std::fprintf(stderr, "--dtype must be float32 or float16\n");
      return 2;
    }
    RawEngine raw_engine(model, static_cast<int>(batch));
    const auto dir = std::filesystem::temp_directory_path() / "serve_bench_repo";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "m.pbtxt") << absl::StrFormat(
        "variant: \"%s\" batching { max_batch_size: %d max_queue_delay_us: 20000 "
        "preferred_batch_sizes: %d max_queue_size: 4096 instances: %d }\n",
        model, batch, batch, instances);
    std::unique_ptr<Server> server;
    pid_t pid = 0;
    std::string address;
    int input_size = 0;
    if (server_binary.empty()) {
      server = StartServer(dir.string());
      address = absl::StrFormat("127.0.0.1:%d", server->port());
      input_size = server->models().models()[0]->spec().input_size;
    } else {
      std::tie(pid, address) = SpawnServer(server_binary, dir.string());
      auto info = models::FindModel(model);
      input_size = info.ok() ? (*info)->input_size : 224;
    }
    grpc::GenericStub stub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    v1::ClassifyRequest req;
    req.ParseFromString(FloatTensorRequest(input_size, 1, static_cast<int>(images_per_request),
                                           dtype == "float16"));
    // Raw and served windows alternate, so that the machine's drift (±5-10% over a minute on
    // these VMs) lands on both sides of the ratio instead of on one of them.
    const double window = static_cast<double>(seconds) / static_cast<double>(rounds);
    double raw = 0, served = 0, mean_batch = 0, server_cores = 0, client_cores = 0;
    std::string per_round;
    const double n = static_cast<double>(rounds);
    for (int64_t r = 0; r < rounds; ++r) {
      const double raw_r = raw_engine.Measure(window);
      const ClosedLoopResult s = ClosedLoop(&stub, req, static_cast<int>(concurrency), window, pid);
      raw += raw_r / n;
      served += s.img_s / n;
      mean_batch += s.mean_batch / n;
      server_cores += s.server_cores / n;
      client_cores += s.client_cores / n;
      per_round += absl::StrFormat("%s%.3f", r == 0 ? "" : ",", s.img_s / raw_r);
    }
    // With a separate server process, the load generator's own CPU is known: what the server
    // would serve if it had the cores the generator used (the generator shares the same cores
    // here; in a deployment it does not) is reported beside the measured ratio, never instead.
    std::string apart;
    if (pid > 0 && server_cores > 0) {
      apart = absl::StrFormat(
          ",\"server_cores\":%.2f,\"load_generator_cores\":%.2f,"
          "\"ratio_without_load_generator\":%.3f",
          server_cores, client_cores, served * (server_cores + client_cores) / server_cores / raw);
    }
    std::printf(
        "{\"mode\":\"throughput\",\"model\":\"%s\",\"batch\":%ld,\"concurrency\":%ld,"
        "\"images_per_request\":%ld,\"dtype\":\"%s\",\"instances\":%ld,\"rounds\":%ld,"
        "\"raw_engine_img_s\":%.1f,\"served_img_s\":%.1f,\"ratio\":%.3f,"
        "\"round_ratios\":[%s],\"mean_batch\":%.2f%s}\n",
        model.c_str(), long(batch), long(concurrency), long(images_per_request), dtype.c_str(),
        long(instances), long(rounds), raw, served, served / raw, per_round.c_str(), mean_batch,
        apart.c_str());
    if (server) {
      server->Drain();
    } else {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
    std::filesystem::remove_all(dir);
    return 0;
  }
  if (mode == "overload") {
    auto server = StartServer("");
    auto stub = v1::VisionService::NewStub(grpc::CreateCustomChannel(
        absl::StrFormat("127.0.0.1:%d", server->port()), grpc::InsecureChannelCredentials(), args));
    v1::ClassifyRequest req;
    req.ParseFromString(FloatTensorRequest(224, 2));
    for (const std::string target : {"model:convnext_tiny", "policy:balanced"}) {
      v1::ClassifyRequest r = req;
      if (target.rfind("model:", 0) == 0) {
        r.set_model(target.substr(6));
      } else {
        r.set_policy(target.substr(7));
      }
      const OverloadResult o =
          OpenLoop(stub.get(), r, static_cast<double>(rate), static_cast<double>(budget_ms),
                   static_cast<double>(seconds));
      std::string mix, codes;
      for (const auto& [m, n] : o.mix) mix += absl::StrFormat("\"%s\":%d,", m, n);
      for (const auto& [c, n] : o.codes) codes += absl::StrFormat("\"%d\":%d,", c, n);
      if (!mix.empty()) mix.pop_back();
      if (!codes.empty()) codes.pop_back();
      std::printf(
          "{\"mode\":\"overload\",\"target\":\"%s\",\"rate\":%ld,\"budget_ms\":%ld,\"sent\":%ld,"
          "\"ok_within_budget\":%ld,\"goodput_share\":%.3f,\"mix\":{%s},\"failed_codes\":{%s}}\n",
          target.c_str(), long(rate), long(budget_ms), long(o.sent), long(o.ok_in_budget),
          o.sent ? static_cast<double>(o.ok_in_budget) / o.sent : 0.0, mix.c_str(), codes.c_str());
      std::fflush(stdout);
      std::this_thread::sleep_for(std::chrono::seconds(2));  // let queues empty
    }
    server->Drain();
    return 0;
  }
  std::fprintf(stderr, "unknown --mode %s\n", mode.c_str());
  return 2;
}

}  // namespace
}  // namespace visionserve

int main(int argc, char** argv) { return visionserve::Main(argc, argv); }
