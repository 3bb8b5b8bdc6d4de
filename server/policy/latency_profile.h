#pragma once

// A model's service time per batch size: measured at warm-up for a few batch sizes, refined
// online from every executed batch (EWMA), interpolated for sizes never measured. Thread-safe:
// workers Record() while the batcher and the router Predict().

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/batching/batch_queue.h"

namespace visionserve::policy {

class LatencyProfile final : public batching::LatencyModel {
 public:
  // `max_batch_size` bounds the table; `alpha` is the EWMA weight of a new sample.
  explicit LatencyProfile(int max_batch_size, double alpha = 0.1);

  // Adds a measurement of one batch of `batch_size` taking `micros`. The first sample of a size
  // replaces its estimate; later ones move it by alpha.
  void Record(int batch_size, int64_t micros);

  // Estimated microseconds for one batch: the size's own estimate if measured, else linear
  // interpolation between the nearest measured sizes, else proportional extrapolation from the
  // nearest one; 0 when nothing is measured yet.
  int64_t PredictMicros(int batch_size) const override;

  struct Point {
    int batch_size = 0;
    double micros = 0;
    bool measured = false;
    int64_t samples = 0;
  };
  // Every batch size 1..max_batch_size that is a power of two, the max, or measured.
  std::vector<Point> Snapshot() const;
  int max_batch_size() const { return max_batch_size_; }

 private:
  double PredictLocked(int batch_size) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const int max_batch_size_;
  const double alpha_;
  mutable absl::Mutex mu_;
  std::vector<double> micros_ ABSL_GUARDED_BY(mu_);    // index = batch size
  std::vector<int64_t> samples_ ABSL_GUARDED_BY(mu_);  // 0: not measured
};

}  // namespace visionserve::policy
