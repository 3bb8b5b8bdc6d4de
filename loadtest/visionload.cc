// visionload: the load generator for visionserve. Flags -> RunPlan + Workload + GrpcTransport;
// RunLoad; table, JSON and CSV. See README.md ("Load testing") and `visionload --help`.
// Exit codes: 0 the run finished with at least one OK answer, 1 it could not run or nothing
// succeeded, 2 usage error.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "loadtest/grpc_transport.h"
#include "loadtest/metrics_scrape.h"
#include "loadtest/report.h"
#include "loadtest/runner.h"
#include "loadtest/workload.h"
#include "server/flags.h"

namespace visionserve::loadtest {
namespace {

std::atomic<bool> g_interrupted{false};

void OnInterrupt(int) { g_interrupted.store(true); }

// Every time and rate visionload takes is bounded so that nanosecond arithmetic cannot overflow.
constexpr double kMaxSeconds = 1e6;
constexpr double kMaxRate = 1e6;

absl::StatusOr<double> Number(const std::string& flag, const std::string& text, double min,
                              double max = kMaxSeconds * 1e3) {
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !(v >= min) || !(v <= max)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " wants a number in [", min, ", ", max, "], got \"", text, "\""));
  }
  return v;
}

std::chrono::nanoseconds SecondsToNs(double s) {
  return std::chrono::nanoseconds(static_cast<int64_t>(s * 1e9));
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    std::cerr << "visionload: cannot write " << path << "\n";
    return false;
  }
  return true;
}

int Main(int argc, char** argv) {
  std::string server = "127.0.0.1:8500", mode = "closed", concurrency = "1", rate = "10",
              arrivals = "poisson", p99_ms = "0", rate_min = "1", rate_max = "1000",
              precision = "0.05", max_error_rate = "0.01", warmup_s = "2", duration_s = "10",
              max_run_s = "3600", drain_s = "10", deadline_ms = "0", budget_ms = "0",
              input = "synthetic", image_size = "224x224", encoding = "jpeg", mix = "default",
              metrics_url, json_path, csv_path, interval_ms = "1000";
  int64_t requests = 0, search_steps = 12, max_outstanding = 100000, channels = 2,
          distinct_images = 8, images_per_request = 1, top_k = 0, priority = 0, seed = 1,
          wait_ready_s = 30;
  bool quiet = false;
  FlagParser flags(
      "visionload: load generator for visionserve (latency under load, capacity)\n"
      "usage: visionload [flags]\n"
      "  closed loop sweep:  visionload --mode closed --concurrency 1..32 --duration-s 10\n"
      "  open loop:          visionload --mode open --rate 20,40,60 --arrivals poisson\n"
      "  capacity search:    visionload --mode search --p99-ms 100 --rate-min 5 --rate-max 200\n"
      "levels: N | A,B,C | A..B (doubling) | A..B:STEP, combinable with commas\n"
      "exit codes: 0 ok, 1 the run failed or nothing succeeded, 2 usage");
  flags.String("server", &server, "visionserve address HOST:PORT");
  flags.String("mode", &mode, "closed (fixed concurrency), open (fixed rate) or search");
  flags.String("concurrency", &concurrency, "closed: calls in flight, or a sweep of levels");
  flags.String("rate", &rate, "open: requests/s, or a sweep of levels");
  flags.String("arrivals", &arrivals, "open and search: constant or poisson");
  flags.String("p99-ms", &p99_ms, "search: the p99 objective (OK calls), ms");
  flags.String("rate-min", &rate_min, "search: lowest rate tried (and the first), requests/s");
  flags.String("rate-max", &rate_max, "search: highest rate tried, requests/s");
  flags.String("search-precision", &precision,
               "search: stop when (lowest fail - highest pass) / highest pass is below this");
  flags.Int("search-steps", &search_steps, "search: most steps");
  flags.String("max-error-rate", &max_error_rate,
               "search: a step with a larger share of failed calls fails");
  flags.String("warmup-s", &warmup_s, "per step: seconds of load before measuring");
  flags.String("duration-s", &duration_s, "per step: measurement seconds (0: --requests alone)");
  flags.Int("requests", &requests, "per step: at most this many measured requests (0: no bound)");
  flags.String("max-run-s", &max_run_s, "hard cap on the whole run, seconds");
  flags.String("drain-timeout-s", &drain_s,
               "per step: seconds to wait for calls in flight after sending stops, then cancel");
  flags.String("deadline-ms", &deadline_ms, "per call gRPC deadline, ms (0: none)");
  flags.String("budget-ms", &budget_ms,
               "goodput counts OK calls within this latency, ms (0: the deadline; none: all OK)");
  flags.Int("max-outstanding", &max_outstanding,
            "open loop: calls in flight before sending waits (the wait counts as latency)");
  flags.Int("channels", &channels, "gRPC channels (TCP connections), calls spread round-robin");
  flags.String("input", &input, "synthetic, or a folder of .jpg/.jpeg/.png files");
  flags.String("image-size", &image_size, "synthetic: WIDTHxHEIGHT");
  flags.String("encoding", &encoding,
               "synthetic: jpeg, png, u8 (raw HWC tensor), f32 or f16 (preprocessed tensor, size = "
               "the model's input)");
  flags.Int("distinct-images", &distinct_images, "synthetic: different images in rotation");
  flags.Int("images-per-request", &images_per_request, "images in each request");
  flags.String("mix", &mix,
               "weighted targets separated by ';': default | model:NAME | policy:NAME | "
               "inline:budget_ms=B,min_top1=T,objective=fastest|most_accurate,"
               "on_miss=reject|serve_fastest,families=a|b; each optionally @WEIGHT");
  flags.Int("top-k", &top_k, "classes per image (0: the server's default)");
  flags.Int("priority", &priority, "request priority (0 highest)");
  flags.Int("seed", &seed, "seed for Poisson arrivals, the mix and synthetic images");
  flags.String("metrics-url", &metrics_url,
               "scrape the server's Prometheus endpoint around each step, e.g. "
               "http://127.0.0.1:9090/metrics");
  flags.Int("wait-ready-s", &wait_ready_s, "wait this long for the server to be SERVING");
  flags.String("interval-ms", &interval_ms, "timeline resolution (variant mix over time), ms");
  flags.String("json", &json_path, "write the full report as JSON (input of loadtest/plot.py)");
  flags.String("csv", &csv_path, "write one CSV row per step");
  flags.Bool("quiet", &quiet, "no progress line");
  if (std::optional<int> code = flags.ParseOrExitCode(argc, argv, nullptr, "visionload")) {
    return *code;
  }

  // Flags -> plan and workload; every problem is a usage error.
  RunPlan plan;
  WorkloadOptions w;
  absl::Status status = [&]() -> absl::Status {
    if (mode == "closed") {
      plan.mode = Mode::kClosed;
      auto levels = ParseSweep(concurrency, /*integers=*/true);
      if (!levels.ok()) return levels.status();
      for (double v : *levels) {
        if (v > 100000) return absl::InvalidArgumentError("--concurrency is at most 100000");
        plan.concurrency.push_back(static_cast<int>(v));
      }
    } else if (mode == "open") {
      plan.mode = Mode::kOpen;
      auto levels = ParseSweep(rate, /*integers=*/false);
      if (!levels.ok()) return levels.status();
      for (double v : *levels) {
        if (v > kMaxRate) return absl::InvalidArgumentError("--rate is at most 1e6/s");
      }
      plan.rates = *levels;
    } else if (mode == "search") {
      plan.mode = Mode::kSearch;
    } else {
      return absl::InvalidArgumentError("--mode is closed, open or search");
    }
    auto a = ParseArrivals(arrivals);
    if (!a.ok()) return a.status();
    plan.step.arrivals = *a;
    auto target = Number("p99-ms", p99_ms, 0);
    auto lo = Number("rate-min", rate_min, 1e-3, kMaxRate);
    auto hi = Number("rate-max", rate_max, 1e-3, kMaxRate);
    auto prec = Number("search-precision", precision, 1e-4, 10);
    auto max_err = Number("max-error-rate", max_error_rate, 0, 1);
    auto warm = Number("warmup-s", warmup_s, 0, kMaxSeconds);
    auto dur = Number("duration-s", duration_s, 0, kMaxSeconds);
    auto cap = Number("max-run-s", max_run_s, 0.001, kMaxSeconds);
    auto drain = Number("drain-timeout-s", drain_s, 0, kMaxSeconds);
    auto deadline = Number("deadline-ms", deadline_ms, 0);
    auto interval = Number("interval-ms", interval_ms, 10);
    for (const auto* v :
         {&target, &lo, &hi, &prec, &max_err, &warm, &dur, &cap, &drain, &deadline, &interval}) {
      if (!v->ok()) return v->status();
    }
    plan.target_p99_ms = *target;
    if (plan.mode == Mode::kSearch && *target <= 0) {
      return absl::InvalidArgumentError("--mode search needs --p99-ms");
    }
    if (*hi < *lo) return absl::InvalidArgumentError("--rate-max is below --rate-min");
    if (search_steps < 1) return absl::InvalidArgumentError("--search-steps must be >= 1");
    plan.search = {.min_rate = *lo,
                   .max_rate = *hi,
                   .start_rate = *lo,
                   .precision = *prec,
                   .max_steps = static_cast<int>(search_steps)};
    plan.max_error_fraction = *max_err;
    plan.max_run = SecondsToNs(*cap);
    StepConfig& c = plan.step;
    c.warmup = SecondsToNs(*warm);
    c.duration = SecondsToNs(*dur);
    if (requests < 0) return absl::InvalidArgumentError("--requests must be >= 0");
    c.max_requests = requests;
    if (c.duration.count() == 0 && c.max_requests == 0) {
      return absl::InvalidArgumentError("--duration-s 0 needs --requests N");
    }
    c.drain_timeout = SecondsToNs(*drain);
    c.hard_cap = plan.max_run;
    c.deadline = SecondsToNs(*deadline / 1e3);
    if (budget_ms == "none") {
      c.budget_us = 0;
    } else {
      auto budget = Number("budget-ms", budget_ms, 0);
      if (!budget.ok()) return budget.status();
      c.budget_us = static_cast<int64_t>((*budget > 0 ? *budget : *deadline) * 1e3);
    }
    if (max_outstanding < 1) return absl::InvalidArgumentError("--max-outstanding must be >= 1");
    c.max_outstanding = max_outstanding;
    c.interval = SecondsToNs(*interval / 1e3);
    c.progress_every = isatty(STDERR_FILENO) ? std::chrono::seconds(1) : std::chrono::seconds(5);
    c.seed = static_cast<uint64_t>(seed);
    c.id_prefix = absl::StrCat("vl", getpid(), "-");

    w.input = input;
    std::vector<std::string> wh = absl::StrSplit(image_size, 'x');
    if (wh.size() != 2 || !absl::SimpleAtoi(wh[0], &w.width) ||
        !absl::SimpleAtoi(wh[1], &w.height)) {
      return absl::InvalidArgumentError("--image-size wants WIDTHxHEIGHT, e.g. 640x480");
    }
    auto enc = ParseEncoding(encoding);
    if (!enc.ok()) return enc.status();
    w.encoding = *enc;
    w.distinct_images = static_cast<int>(distinct_images);
    w.images_per_request = static_cast<int>(images_per_request);
    auto targets = ParseMix(mix);
    if (!targets.ok()) return targets.status();
    w.targets = *targets;
    w.top_k = static_cast<int>(top_k);
    w.priority = static_cast<int>(priority);
    w.seed = static_cast<uint64_t>(seed);
    if (channels < 1) return absl::InvalidArgumentError("--channels must be >= 1");
    return absl::OkStatus();
  }();
  if (!status.ok()) {
    std::cerr << "visionload: " << status.message() << "\n";
    return 2;
  }
  auto workload = Workload::Create(w);
  if (!workload.ok()) {
    std::cerr << "visionload: " << workload.status().message() << "\n";
    return workload.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  auto transport =
      GrpcTransport::Create({.address = server, .channels = static_cast<int>(channels)});
  if (!transport.ok()) {
    std::cerr << "visionload: " << transport.status().message() << "\n";
    return 2;
  }
  if (absl::Status s = (*transport)->WaitServing(absl::Seconds(wait_ready_s)); !s.ok()) {
    std::cerr << "visionload: " << s.message() << "\n";
    return 1;
  }

  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C kills
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  const bool tty = isatty(STDERR_FILENO);
  if (!quiet) {
    std::cerr << "visionload: " << ModeName(plan.mode) << " loop against " << server << "; "
              << (*workload)->Describe() << "\n";
  }
  ProgressFn progress;
  if (!quiet) {
    progress = [tty](const Progress& p) {
      std::cerr << (tty ? "\r" : "") << FormatProgress(p) << (tty ? "\033[K" : "\n") << std::flush;
    };
  }
  StepHooks hooks;
  MetricSamples before;
  std::string before_error;
  if (!metrics_url.empty()) {
    hooks.before = [&] {
      auto body = HttpGet(metrics_url, absl::Seconds(5));
      auto parsed = body.ok() ? ParsePrometheusText(*body) : body.status();
      before_error = parsed.ok() ? "" : std::string(parsed.status().message());
      before = parsed.ok() ? *parsed : MetricSamples();
    };
  }
  hooks.after = [&](StepSummary* s) {
    if (!metrics_url.empty()) {
      auto body = HttpGet(metrics_url, absl::Seconds(5));
      auto after = body.ok() ? ParsePrometheusText(*body) : body.status();
      if (!before_error.empty()) {
        s->server_metrics_error = before_error;
      } else if (!after.ok()) {
        s->server_metrics_error = std::string(after.status().message());
      } else {
        s->server_metrics = CounterDeltas(before, *after);
      }
    }
    if (!quiet) {
      std::cerr << (tty ? "\r\033[K" : "")
                << absl::StrFormat(
                       "visionload: %s done: %.1f ok/s, p50 %.1f ms, p99 %.1f ms, "
                       "%d errors\n",
                       s->label, s->throughput_rps, s->latency.ValueAtQuantile(0.5) / 1e3,
                       s->latency.ValueAtQuantile(0.99) / 1e3, s->completed - s->ok);
    }
  };

  auto report = RunLoad(plan, **transport, **workload, progress, hooks, &g_interrupted);
  if (!report.ok()) {
    std::cerr << "visionload: " << report.status().message() << "\n";
    return 1;
  }
  report->settings = {{"server", server},
                      {"mode", ModeName(plan.mode)},
                      {"concurrency", plan.mode == Mode::kClosed ? concurrency : ""},
                      {"rate", plan.mode == Mode::kOpen ? rate : ""},
                      {"arrivals", plan.mode == Mode::kClosed ? "" : arrivals},
                      {"p99_ms", plan.mode == Mode::kSearch ? p99_ms : ""},
                      {"warmup_s", warmup_s},
                      {"duration_s", duration_s},
                      {"requests", absl::StrCat(requests)},
                      {"deadline_ms", deadline_ms},
                      {"budget_ms", absl::StrCat(plan.step.budget_us / 1e3)},
                      {"channels", absl::StrCat(channels)},
                      {"mix", mix},
                      {"workload", (*workload)->Describe()},
                      {"command", [&] {
                         std::string cmd;
                         for (int i = 0; i < argc; ++i)
                           absl::StrAppend(&cmd, i ? " " : "", argv[i]);
                         return cmd;
                       }()}};
  std::cout << FormatTable(*report);
  bool ok = true;
  if (!json_path.empty()) ok &= WriteFile(json_path, FormatJson(*report));
  if (!csv_path.empty()) ok &= WriteFile(csv_path, FormatCsv(*report));
  int64_t total_ok = 0;
  for (const auto& s : report->steps) total_ok += s.ok;
  if (total_ok == 0) std::cerr << "visionload: no call succeeded\n";
  return ok && total_ok > 0 ? 0 : 1;
}

}  // namespace
}  // namespace visionserve::loadtest

int main(int argc, char** argv) { return visionserve::loadtest::Main(argc, argv); }
