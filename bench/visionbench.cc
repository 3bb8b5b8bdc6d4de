// visionbench: end-to-end engine throughput and latency for zoo models.
//
//   visionbench --model convnext_tiny --batch 1,8,32 --threads 2 --seconds 10 [--json]
//   visionbench --onnx convnext_tiny.onnx --batch 1,8,32     (an ONNX export, e.g. torchvision's)
//   visionbench --model convnext_tiny --weights convnext_tiny.onnx
//
// Per batch size: img/s, latency p50/p99 (ms), GFLOP/s and peak RSS (MiB, reset per batch
// size through /proc/self/clear_refs). --json prints one object per line.

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/executor.h"
#include "models/catalog.h"
#include "models/detector.h"
#include "models/onnx.h"
#include "models/zoo.h"

ABSL_FLAG(std::string, model, "regnet_y_400mf", "zoo model name (--list to see all)");
ABSL_FLAG(std::string, batch, "1,8,32", "comma-separated batch sizes");
ABSL_FLAG(int, threads, 0, "worker threads (0: the process's CPU allowance)");
ABSL_FLAG(double, seconds, 5.0, "measured seconds per batch size (after warm-up)");
ABSL_FLAG(int, min_runs, 3, "at least this many measured runs per batch size");
ABSL_FLAG(int, input_size, 0, "input resolution (0: the catalog's)");
ABSL_FLAG(std::string, isa, "", "kernel set: portable, avx2, avx512 (default: best available)");
ABSL_FLAG(bool, json, false, "one JSON object per batch size instead of a table");
ABSL_FLAG(bool, plan, false, "print each batch size's plan (ops, kernels, arena)");
ABSL_FLAG(bool, profile, false, "print the time of each plan step (median of the runs)");
ABSL_FLAG(std::string, onnx, "",
          "benchmark an ONNX model file instead of a zoo model (e.g. a torchvision export)");
ABSL_FLAG(std::string, weights, "",
          "load the zoo model's weights from this ONNX export of the same architecture");
ABSL_FLAG(bool, list, false, "list the zoo's models and exit");

namespace {

using visionserve::engine::CompiledModel;
using visionserve::engine::CompileOptions;

double PeakRssMiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      int64_t kb = 0;
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb / 1024.0;
    }
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

void ResetPeakRss() {
  std::ofstream f("/proc/self/clear_refs");
  if (f) f << "5";
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double idx = p * (v.size() - 1);
  const size_t lo = static_cast<size_t>(idx);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - lo);
}

// Per-step median times over a few profiled runs, slowest first.
void PrintProfile(const CompiledModel& m, const visionserve::engine::Plan& plan, int64_t batch,
                  const std::vector<float>& input, std::vector<float>& output) {
  const size_t n = plan.steps().size();
  std::vector<std::vector<double>> t(n);
  for (int rep = 0; rep < 5; ++rep) {
    auto s = m.ProfileSteps(batch, input, output);
    if (!s.ok()) return;
    for (size_t i = 0; i < n; ++i) t[i].push_back((*s)[i]);
  }
  std::vector<std::pair<double, size_t>> rows;
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    rows.emplace_back(Percentile(t[i], 0.5), i);
    total += rows.back().first;
  }
  std::sort(rows.rbegin(), rows.rend());
  std::printf("profile batch %lld: %.2f ms in %zu steps\n", static_cast<long long>(batch),
              total * 1e3, n);
  for (const auto& [sec, i] : rows) {
    const auto& op = *plan.steps()[i].op;
    const auto& node = m.graph().node(plan.steps()[i].node_index);
    std::printf("  %8.3f ms %5.1f%% %7.1f GFLOP/s  %-40s %s\n", sec * 1e3, 100 * sec / total,
                op.Flops() * 1e-9 / sec, node.name.c_str(), op.Describe().c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("visionbench --model NAME --batch 1,8,32 --threads 2 --seconds S");
  absl::ParseCommandLine(argc, argv);
  namespace models = visionserve::models;
  namespace engine = visionserve::engine;

  if (absl::GetFlag(FLAGS_list)) {
    std::printf("%-22s %-13s %5s %12s %8s %7s\n", "model", "family", "size", "params", "GMACs",
                "top1");
    for (const models::ModelInfo& m : models::Catalog()) {
      std::printf("%-22s %-13s %5d %12lld %8.3f %7.3f\n", m.name.c_str(), m.family.c_str(),
                  m.input_size, static_cast<long long>(m.params), m.gmacs, m.top1);
    }
    std::printf("\n%-26s %-16s %5s %12s %8s %7s\n", "detector", "backbone", "size", "params",
                "GMACs", "anchors");
    for (const models::DetectorInfo& d : models::DetectorCatalog()) {
      std::printf("%-26s %-16s %5d %12lld %8.3f %7lld\n", d.name.c_str(), d.backbone.c_str(),
                  d.input_size, static_cast<long long>(d.params), d.gmacs,
                  static_cast<long long>(d.anchors));
    }
    return 0;
  }

  std::vector<int64_t> batches;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_batch), ',', absl::SkipEmpty())) {
    int64_t b = 0;
    if (!absl::SimpleAtoi(s, &b) || b < 1) {
      std::fprintf(stderr, "bad batch size '%s'\n", std::string(s).c_str());
      return 2;
    }
    batches.push_back(b);
  }
  if (batches.empty()) {
    std::fprintf(stderr, "--batch needs at least one size\n");
    return 2;
  }

  std::string name = absl::GetFlag(FLAGS_model);
  models::BuildOptions bo;
  bo.input_size = absl::GetFlag(FLAGS_input_size);
  absl::StatusOr<visionserve::engine::Graph> graph;
  if (const std::string onnx = absl::GetFlag(FLAGS_onnx); !onnx.empty()) {
    models::OnnxImportOptions io;
    io.input_size = bo.input_size;
    auto imported = models::ImportOnnxFile(onnx, io);
    if (imported.ok()) {
      graph = std::move(imported->graph);
      name = onnx.substr(onnx.find_last_of('/') + 1);
    } else {
      graph = imported.status();
    }
  } else if (const std::string weights = absl::GetFlag(FLAGS_weights); !weights.empty()) {
    graph = models::BuildModelWithOnnxWeights(name, weights, bo);
  } else if (models::FindDetector(name).ok()) {
    graph = models::BuildDetector(name, bo);
  } else {
    graph = models::BuildModel(name, bo);
  }
  if (!graph.ok()) {
    std::fprintf(stderr, "%s\n", graph.status().ToString().c_str());
    return 1;
  }
  CompileOptions co;
  co.num_threads = absl::GetFlag(FLAGS_threads);
  co.batch_sizes = batches;
  co.max_batch_size = *std::max_element(batches.begin(), batches.end());
  if (const std::string isa = absl::GetFlag(FLAGS_isa); !isa.empty()) {
    auto parsed = engine::ParseIsa(isa);
    if (!parsed.ok()) {
      std::fprintf(stderr, "%s\n", parsed.status().ToString().c_str());
      return 2;
    }
    co.isa = *parsed;
  }
  auto model = CompiledModel::Create(*std::move(graph), co);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const CompiledModel& m = **model;
  const bool json = absl::GetFlag(FLAGS_json);
  if (!json) {
    std::printf("%s: %s, %d threads, input %s\n", name.c_str(),
                std::string(engine::IsaName(m.isa())).c_str(), m.num_threads(),
                m.input_dims().ToString().c_str());
    std::printf("%6s %10s %12s %12s %10s %12s %14s\n", "batch", "img/s", "lat_p50_ms", "lat_p99_ms",
                "GFLOP/s", "peak_rss_mb", "arena/interm_MB");
  }
  for (int64_t b : batches) {
    auto plan = m.GetPlan(b);
    if (!plan.ok()) {
      std::fprintf(stderr, "%s\n", plan.status().ToString().c_str());
      return 1;
    }
    if (absl::GetFlag(FLAGS_plan)) std::fputs((*plan)->Describe(m.graph()).c_str(), stdout);
    std::vector<float> input(static_cast<size_t>(b * m.input_dims().elements()));
    for (size_t i = 0; i < input.size(); ++i)
      input[i] = static_cast<float>((i * 7919) % 255) / 127.f - 1;
    std::vector<float> output(static_cast<size_t>(b * m.output_dims().elements()));
    ResetPeakRss();
    for (int i = 0; i < 2; ++i) {  // warm-up
      if (auto s = m.Run(b, input, output); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 1;
      }
    }
    std::vector<double> lat_ms;
    const auto start = std::chrono::steady_clock::now();
    const double budget = absl::GetFlag(FLAGS_seconds);
    double elapsed = 0;
    while (elapsed < budget || static_cast<int>(lat_ms.size()) < absl::GetFlag(FLAGS_min_runs)) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)m.Run(b, input, output);
      const auto t1 = std::chrono::steady_clock::now();
      lat_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      elapsed = std::chrono::duration<double>(t1 - start).count();
    }
    if (absl::GetFlag(FLAGS_profile)) PrintProfile(m, **plan, b, input, output);
    const double img_s = b * lat_ms.size() / elapsed;
    const double gflops = (*plan)->flops() * 1e-9 * lat_ms.size() / elapsed;
    const double p50 = Percentile(lat_ms, 0.5), p99 = Percentile(lat_ms, 0.99);
    const double rss = PeakRssMiB();
    if (json) {
      std::printf(
          "{\"model\":\"%s\",\"batch\":%lld,\"threads\":%d,\"isa\":\"%s\",\"img_s\":%.2f,"
          "\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"gflop_s\":%.1f,\"peak_rss_mb\":%.1f,"
          "\"arena_mb\":%.2f,\"intermediate_mb\":%.2f,\"runs\":%zu}\n",
          name.c_str(), static_cast<long long>(b), m.num_threads(),
          std::string(engine::IsaName(m.isa())).c_str(), img_s, p50, p99, gflops, rss,
          (*plan)->arena_bytes() / 1048576.0, (*plan)->intermediate_bytes() / 1048576.0,
          lat_ms.size());
    } else {
      std::printf("%6lld %10.1f %12.2f %12.2f %10.1f %12.1f %7.1f/%-6.1f\n",
                  static_cast<long long>(b), img_s, p50, p99, gflops, rss,
                  (*plan)->arena_bytes() / 1048576.0, (*plan)->intermediate_bytes() / 1048576.0);
    }
    std::fflush(stdout);
  }
  return 0;
}
