#pragma once

// Prometheus metrics of the daemon (prometheus-cpp). Every name starts with `visionserve_` and
// carries its unit; label sets are bounded (model, rpc, code, reason, policy). Handles are
// resolved once per model when it is added, so the request path only increments pointers.
// Gauges that describe state (queue depth, batches in flight, model state and info, process
// CPU/memory/threads/fds) are read at scrape time by a collector instead of being kept up to
// date on the hot path.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}

namespace visionserve::metrics {

enum class Rpc { kClassify = 0, kClassifyStream = 1, kDetect = 2, kDetectStream = 3 };
inline constexpr int kNumRpcs = 4;
inline constexpr int kNumCodes = 17;  // google.rpc.Code 0..16

// Exponential buckets from 100 µs to 10 s (16 bounds, ×10^(1/3) apart), in seconds.
std::vector<double> LatencyBuckets();

// Per model (and one for requests that never reached a model, labelled model="").
struct ModelMetrics {
  std::array<std::array<prometheus::Counter*, kNumCodes>, kNumRpcs> requests{};
  std::array<prometheus::Histogram*, kNumRpcs> request_seconds{};
  prometheus::Histogram* preprocess_seconds = nullptr;
  prometheus::Histogram* queue_seconds = nullptr;
  prometheus::Histogram* compute_seconds = nullptr;
  prometheus::Counter* images = nullptr;
  prometheus::Counter* batches = nullptr;
  prometheus::Histogram* batch_size = nullptr;
  prometheus::Counter* drops_deadline = nullptr;
  prometheus::Counter* drops_cancelled = nullptr;
  prometheus::Counter* drops_queue_full = nullptr;
  prometheus::Counter* within_budget = nullptr;
  prometheus::Counter* past_budget = nullptr;
  // Policy decisions that chose this model, indexed like the policy names given to AddModel.
  std::vector<prometheus::Counter*> decisions;
};

// What the scrape-time collector reads for one model.
struct ModelSnapshot {
  std::string name, family, variant, weights;
  std::string state;  // LOADING, WARMING, READY, UNLOADING, FAILED
  int queue_depth = 0;
  int in_flight = 0;
};

class ServerMetrics {
 public:
  // `listen` HOST:PORT serves GET /metrics (port 0: any free port); empty: no endpoint (the
  // registry is still there for tests).
  static absl::StatusOr<std::unique_ptr<ServerMetrics>> Create(const std::string& listen);
  ~ServerMetrics();

  // Resolves every handle of `model`, including a decision counter per policy name (the
  // server's policies, then "inline"). Call once per model, before it serves. Thread-safe.
  ModelMetrics* AddModel(const std::string& model, const std::vector<std::string>& policies);
  // Requests that failed before a model was chosen (unknown model, bad policy, ...).
  ModelMetrics* unrouted() { return unrouted_; }
  // Scrape-time source of the per-model gauges.
  void SetModelSource(std::function<std::vector<ModelSnapshot>()> source);

  int port() const { return port_; }
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // The exposition text (what GET /metrics returns).
  std::string Serialize() const;

 private:
  ServerMetrics() = default;
  class StateCollector;

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<StateCollector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Family<prometheus::Histogram>* request_seconds_ = nullptr;
  prometheus::Family<prometheus::Histogram>* preprocess_seconds_ = nullptr;
  prometheus::Family<prometheus::Histogram>* queue_seconds_ = nullptr;
  prometheus::Family<prometheus::Histogram>* compute_seconds_ = nullptr;
  prometheus::Family<prometheus::Counter>* images_ = nullptr;
  prometheus::Family<prometheus::Counter>* batches_ = nullptr;
  prometheus::Family<prometheus::Histogram>* batch_size_ = nullptr;
  prometheus::Family<prometheus::Counter>* drops_ = nullptr;
  prometheus::Family<prometheus::Counter>* slo_ = nullptr;
  prometheus::Family<prometheus::Counter>* decisions_ = nullptr;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<ModelMetrics>> models_ ABSL_GUARDED_BY(mu_);
  ModelMetrics* unrouted_ = nullptr;
};

const char* RpcName(Rpc rpc);

}  // namespace visionserve::metrics
