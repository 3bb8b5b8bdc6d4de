#pragma once

// One configured model through its lifecycle: LOADING (build + compile) -> WARMING (run each
// planned batch size, record the latency profile) -> READY (batcher accepting work) ->
// UNLOADING (draining) ; FAILED with a reason at any step. State is read lock-free by health
// checks and request handlers.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "engine/executor.h"
#include "server/batching/dynamic_batcher.h"
#include "server/metrics/metrics.h"
#include "server/policy/latency_profile.h"
#include "server/preprocess/preprocess.h"
#include "server/repository/model_config.h"

namespace visionserve::repository {

enum class ModelState { kLoading, kWarming, kReady, kUnloading, kFailed };

// Runs on a model's graph after it is built (weights set) and before it is compiled: an
// embedding application's (or a test's) chance to replace parameters by hand. An error fails
// the model's load with that reason.
using GraphHook = std::function<absl::Status(const ModelSpec&, engine::Graph*)>;
const char* ModelStateName(ModelState s);

class ServedModel {
 public:
  explicit ServedModel(ModelSpec spec);
  ~ServedModel();

  // Builds, compiles and warms the model on `pool`, then starts its batcher. Sets FAILED with
  // the reason on error. Call once, from a loader thread.
  absl::Status Load(std::shared_ptr<engine::ThreadPool> pool);
  // UNLOADING: stops the batcher, draining queued work first when `drain`.
  void Unload(bool drain);

  ModelState state() const { return state_.load(std::memory_order_acquire); }
  std::string state_reason() const;
  const ModelSpec& spec() const { return spec_; }
  // The spec's preprocessing in the form preprocess:: takes (built once).
  const preprocess::ClassifySpec& preprocess_spec() const { return preprocess_spec_; }
  // Weights provenance, e.g. "synthetic (seed 0)".
  const std::string& weights() const { return weights_; }
  int64_t input_floats() const { return int64_t{spec_.input_size} * spec_.input_size * 3; }
  // Classifiers: logits; detectors: the [4 + classes, anchors] YOLOv8 block.
  int64_t output_floats() const {
    return spec_.task == ModelTask::kDetect ? (4 + int64_t{spec_.num_classes}) * spec_.num_anchors
                                            : spec_.num_classes;
  }
  // Valid once READY (and until destruction).
  batching::DynamicBatcher* batcher() const { return batcher_.get(); }
  const policy::LatencyProfile& profile() const { return profile_; }
  double load_seconds() const { return load_seconds_; }
  // Metric handles (set once before Load; null when metrics are off).
  void set_metrics(metrics::ModelMetrics* m) { metrics_ = m; }
  // Set once before Load (see GraphHook).
  void set_graph_hook(GraphHook hook) { graph_hook_ = std::move(hook); }
  metrics::ModelMetrics* metrics() const { return metrics_; }

 private:
  void SetState(ModelState s, std::string reason = "");
  absl::Status Warm();

  const ModelSpec spec_;
  const preprocess::ClassifySpec preprocess_spec_;
  std::string weights_;
  std::atomic<ModelState> state_{ModelState::kLoading};
  mutable absl::Mutex mu_;
  std::string reason_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<engine::CompiledModel> compiled_;
  policy::LatencyProfile profile_;
  std::unique_ptr<batching::DynamicBatcher> batcher_;
  double load_seconds_ = 0;
  metrics::ModelMetrics* metrics_ = nullptr;
  GraphHook graph_hook_;
};

}  // namespace visionserve::repository
