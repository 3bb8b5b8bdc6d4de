// visionctl: command-line client for visionserve.
//   visionctl [--server HOST:PORT] classify IMAGE... [--model M] [--top-k K] [--timeout-ms T]
//   visionctl [--server HOST:PORT] models
//   visionctl [--server HOST:PORT] health [--service NAME]
// Exit codes: 0 ok (health: SERVING), 1 the call failed or NOT_SERVING, 2 usage error.
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/flags.h"
#include "vision_service.grpc.pb.h"

namespace {

namespace v1 = visionserve::v1;

int Fail(const grpc::Status& s) {
  std::cerr << "visionctl: "
            << absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())) << ": "
            << s.error_message() << "\n";
  return 1;
}

void SetDeadline(grpc::ClientContext& ctx, int64_t timeout_ms) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
}

const char* StateName(v1::ModelState s) { return v1::ModelState_Name(s).c_str(); }

int Classify(v1::VisionService::Stub& stub, const std::vector<std::string>& files,
             const std::string& model, int64_t top_k, int64_t timeout_ms) {
  v1::ClassifyRequest req;
  if (!model.empty()) req.set_model(model);
  req.set_top_k(static_cast<int>(top_k));
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::cerr << "visionctl: cannot read " << f << "\n";
      return 2;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    req.add_images()->set_encoded(ss.str());
  }
  v1::ClassifyResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout_ms);
  grpc::Status s = stub.Classify(&ctx, req, &resp);
  if (!s.ok()) return Fail(s);
  const auto& by = resp.served_by();
  std::cout << absl::StrFormat("model %s (%s v%d, weights: %s; %s)\n", by.model(), by.variant(),
                               by.version(), by.weights(), by.decision_reason());
  for (int i = 0; i < resp.results_size(); ++i) {
    const auto& r = resp.results(i);
    std::cout << files[i]
              << absl::StrFormat(
                     "  (preprocess %.1f ms, queue %.1f ms, compute %.1f ms in a "
                     "batch of %d, total %.1f ms)\n",
                     r.timing().preprocess_us() / 1e3, r.timing().queue_us() / 1e3,
                     r.timing().compute_us() / 1e3, r.timing().batch_size(),
                     r.timing().total_us() / 1e3);
    for (const auto& c : r.classes()) {
      std::cout << absl::StrFormat("  %6.2f%%  %4d  %s\n", 100 * c.score(), c.index(), c.label());
    }
  }
  return 0;
}

int Models(v1::VisionService::Stub& stub, int64_t timeout_ms) {
  v1::ListModelsResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout_ms);
  grpc::Status s = stub.ListModels(&ctx, v1::ListModelsRequest(), &resp);
  if (!s.ok()) return Fail(s);
  std::cout << absl::StrFormat("%-20s %-18s %-10s %6s %8s %7s  %-22s %s\n", "NAME", "VARIANT",
                               "STATE", "INPUT", "GMACs", "TOP1", "WEIGHTS", "LATENCY ms (batch)");
  for (const auto& m : resp.models()) {
    std::string lat;
    for (const auto& p : m.latency_profile()) {
      if (p.measured()) lat += absl::StrFormat("%.1f(%d) ", p.latency_ms(), p.batch_size());
    }
    std::cout << absl::StrFormat(
        "%-20s %-18s %-10s %6d %8.2f %6.1f%%  %-22s %s%s\n", m.name() + (m.is_default() ? "*" : ""),
        m.variant(), StateName(m.state()), m.input_shape_size() ? m.input_shape(0) : 0, m.gmacs(),
        m.top1(), m.weights(), lat, m.state_reason().empty() ? "" : " " + m.state_reason());
  }
  return 0;
}

int Health(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
           int64_t timeout_ms) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout_ms);
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return Fail(s);
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) << "\n";
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:8500", model, service;
  int64_t top_k = 5, timeout_ms = 10000;
  visionserve::FlagParser flags(
      "visionctl: visionserve command-line client\n"
      "usage: visionctl [flags] classify IMAGE...\n"
      "       visionctl [flags] models\n"
      "       visionctl [flags] health\n"
      "exit codes: 0 ok (health: SERVING), 1 call failed or NOT_SERVING, 2 usage");
  flags.String("server", &server, "visionserve address HOST:PORT");
  flags.String("model", &model, "classify: model name (default: the server's default)");
  flags.Int("top-k", &top_k, "classify: classes per image");
  flags.Int("timeout-ms", &timeout_ms, "call deadline");
  flags.String("service", &service, "health: service name (default: the whole server)");
  std::vector<std::string> args;
  if (std::optional<int> code = flags.ParseOrExitCode(argc, argv, &args, "visionctl")) {
    return *code;
  }
  if (args.empty()) {
    std::cout << flags.Help();
    return 2;
  }
  grpc::ChannelArguments ch_args;
  ch_args.SetMaxReceiveMessageSize(64 << 20);
  ch_args.SetMaxSendMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), ch_args);
  auto stub = v1::VisionService::NewStub(channel);
  const std::string& cmd = args[0];
  if (cmd == "classify") {
    if (args.size() < 2) {
      std::cerr << "visionctl: classify needs at least one image file\n";
      return 2;
    }
    return Classify(*stub, std::vector<std::string>(args.begin() + 1, args.end()), model, top_k,
                    timeout_ms);
  }
  if (cmd == "models") return Models(*stub, timeout_ms);
  if (cmd == "health") return Health(channel, service, timeout_ms);
  std::cerr << "visionctl: unknown command \"" << cmd << "\" (classify, models, health)\n";
  return 2;
}
