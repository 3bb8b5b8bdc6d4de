#include "server/repository/served_model.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "models/detector.h"
#include "models/onnx.h"
#include "models/zoo.h"

namespace visionserve::repository {

const char* ModelStateName(ModelState s) {
  switch (s) {
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kWarming:
      return "WARMING";
    case ModelState::kReady:
      return "READY";
    case ModelState::kUnloading:
      return "UNLOADING";
    case ModelState::kFailed:
      return "FAILED";
  }
  return "UNKNOWN";
}

namespace {

preprocess::ClassifySpec PreprocessSpecOf(const ModelSpec& m) {
  preprocess::ClassifySpec s;
  if (m.task == ModelTask::kDetect) {  // unused: detectors letterbox (see DetectJob)
    s.crop_size = m.input_size;
    s.resize_size = m.input_size;
    s.mean = m.mean;
    s.stddev = m.stddev;
    return s;
  }
  s.resize_size = m.resize_size;
  s.crop_size = m.input_size;
  s.interpolation =
      m.bicubic ? preprocess::Interpolation::kBicubic : preprocess::Interpolation::kBilinear;
  s.mean = m.mean;
  s.stddev = m.stddev;
  return s;
}

}  // namespace

ServedModel::ServedModel(ModelSpec spec)
    : spec_(std::move(spec)),
      preprocess_spec_(PreprocessSpecOf(spec_)),
      weights_(!spec_.onnx_path.empty()
                   ? absl::StrCat(spec_.onnx_path, " (sha256 ", spec_.onnx_sha256, ")")
               : spec_.weights_path.empty()
                   ? absl::StrCat("synthetic (seed ", spec_.seed, ")")
                   : absl::StrCat(spec_.weights_path, " (sha256 ", spec_.weights_sha256, ")")),
      profile_(spec_.batching.max_batch_size) {}

ServedModel::~ServedModel() {
  if (batcher_) batcher_->Stop(/*drain=*/false);
}

std::string ServedModel::state_reason() const {
  absl::MutexLock lock(&mu_);
  return reason_;
}

void ServedModel::SetState(ModelState s, std::string reason) {
  {
    absl::MutexLock lock(&mu_);
    reason_ = std::move(reason);
  }
  state_.store(s, std::memory_order_release);
}

absl::Status ServedModel::Load(std::shared_ptr<engine::ThreadPool> pool) {
  const auto t0 = std::chrono::steady_clock::now();
  auto fail = [&](const absl::Status& s) {
    SetState(ModelState::kFailed, std::string(s.message()));
    return s;
  };
  models::BuildOptions build;
  build.num_classes = spec_.num_classes;
  build.input_size = spec_.input_size;
  build.seed = spec_.seed;
  absl::StatusOr<engine::Graph> graph;
  if (!spec_.onnx_path.empty()) {
    models::OnnxImportOptions opts;
    opts.input_size = spec_.input_size;
    auto imported = models::ImportOnnxFile(spec_.onnx_path, opts);
    if (!imported.ok()) {
      graph = imported.status();
    } else if (imported->info.sha256 != spec_.onnx_sha256) {
      graph = absl::FailedPreconditionError(
          absl::StrCat(spec_.onnx_path, " changed while the server started (sha256 ",
                       imported->info.sha256, ", expected ", spec_.onnx_sha256, ")"));
    } else {
      graph = std::move(imported->graph);
    }
  } else if (spec_.task == ModelTask::kDetect) {
    graph = models::BuildDetector(spec_.variant, build, spec_.num_classes);
  } else if (spec_.weights_path.empty()) {
    graph = models::BuildModel(spec_.info->name, build);
  } else {
    models::OnnxModelInfo file;
    graph =
        models::BuildModelWithOnnxWeights(spec_.info->name, spec_.weights_path, build, {}, &file);
    if (graph.ok() && file.sha256 != spec_.weights_sha256) {
      graph = absl::FailedPreconditionError(
          absl::StrCat(spec_.weights_path, " changed while the server started (sha256 ",
                       file.sha256, ", expected ", spec_.weights_sha256, ")"));
    }
  }
  if (!graph.ok()) return fail(graph.status());
  if (graph_hook_) {
    if (absl::Status s = graph_hook_(spec_, &*graph); !s.ok()) return fail(s);
  }
  engine::CompileOptions copts;
  copts.pool = std::move(pool);
  copts.max_batch_size = spec_.batching.max_batch_size;
  // Plans (and pre-touched arenas) for the sizes warm-up runs; larger batches run as chunks.
  copts.batch_sizes.clear();
  for (int b = 1; b <= std::min<int64_t>(spec_.batching.max_batch_size, copts.max_chunk); b *= 2) {
    copts.batch_sizes.push_back(b);
  }
  auto compiled = engine::CompiledModel::Create(std::move(*graph), copts);
  if (!compiled.ok()) return fail(compiled.status());
  compiled_ = std::move(*compiled);

  SetState(ModelState::kWarming);
  if (absl::Status s = Warm(); !s.ok()) return fail(s);

  batching::DynamicBatcher::Options bopts;
  bopts.batching = spec_.batching;
  bopts.input_floats = input_floats();
  bopts.output_floats = output_floats();
  const engine::CompiledModel* model = compiled_.get();
  bopts.run = [model](std::span<const float* const> images, std::span<float> out) {
    return model->Run(images, out);
  };
  bopts.latency = &profile_;
  bopts.on_batch = [this](int batch, int64_t us) {
    profile_.Record(batch, us);
    if (metrics_) {
      metrics_->batches->Increment();
      metrics_->images->Increment(batch);
      metrics_->batch_size->Observe(batch);
      metrics_->compute_seconds->Observe(static_cast<double>(us) * 1e-6);
    }
  };
  auto batcher = batching::DynamicBatcher::Create(std::move(bopts));
  if (!batcher.ok()) return fail(batcher.status());
  batcher_ = std::move(*batcher);
  load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SetState(ModelState::kReady);
  return absl::OkStatus();
}

// Measures powers of two up to min(max_batch_size, 8) (and max_batch_size itself when it is
// small enough), the median of a few runs each; the profile interpolates the rest and online
// samples refine it.
absl::Status ServedModel::Warm() {
  std::vector<int> sizes;
  const int max_b = spec_.batching.max_batch_size;
  for (int b = 1; b <= std::min(max_b, 8); b *= 2) sizes.push_back(b);
  if (max_b > sizes.back() && max_b <= 16) sizes.push_back(max_b);
  const int64_t in_n = input_floats(), out_n = output_floats();
  std::vector<float> in(static_cast<size_t>(sizes.back() * in_n)), out(sizes.back() * out_n);
  // A deterministic non-trivial input (normalised images are roughly within [-2, 2]).
  for (size_t i = 0; i < in.size(); ++i)
    in[i] = static_cast<float>((i * 2654435761u) % 4001) / 1000 - 2;
  for (int b : sizes) {
    std::vector<int64_t> us;
    const int reps = b <= 2 ? 3 : 2;
    for (int r = 0; r < reps + 1; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      if (absl::Status s = compiled_->Run(b, std::span<const float>(in.data(), b * in_n),
                                          std::span<float>(out.data(), b * out_n));
          !s.ok()) {
        return absl::Status(s.code(), absl::StrCat("warm-up at batch ", b, ": ", s.message()));
      }
      const int64_t t = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - t0)
                            .count();
      if (r > 0) us.push_back(t);  // the first run of a size warms caches
    }
    std::sort(us.begin(), us.end());
    profile_.Record(b, us[us.size() / 2]);
  }
  return absl::OkStatus();
}

void ServedModel::Unload(bool drain) {
  if (state() != ModelState::kReady) return;
  SetState(ModelState::kUnloading);
  if (batcher_) batcher_->Stop(drain);
}

}  // namespace visionserve::repository
