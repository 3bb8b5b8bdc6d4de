#include "server/policy/latency_profile.h"

#include <algorithm>
#include <cmath>

namespace visionserve::policy {

LatencyProfile::LatencyProfile(int max_batch_size, double alpha)
    : max_batch_size_(std::max(1, max_batch_size)),
      alpha_(alpha),
      micros_(max_batch_size_ + 1, 0.0),
      samples_(max_batch_size_ + 1, 0) {}

void LatencyProfile::Record(int batch_size, int64_t micros) {
  if (batch_size < 1 || batch_size > max_batch_size_ || micros < 0) return;
  absl::MutexLock lock(&mu_);
  double& m = micros_[batch_size];
  m = samples_[batch_size] == 0 ? static_cast<double>(micros)
                                : (1 - alpha_) * m + alpha_ * static_cast<double>(micros);
  ++samples_[batch_size];
}

double LatencyProfile::PredictLocked(int b) const {
  b = std::clamp(b, 1, max_batch_size_);
  if (samples_[b] > 0) return micros_[b];
  int lo = b - 1, hi = b + 1;
  while (lo >= 1 && samples_[lo] == 0) --lo;
  while (hi <= max_batch_size_ && samples_[hi] == 0) ++hi;
  const bool has_lo = lo >= 1, has_hi = hi <= max_batch_size_;
  if (has_lo && has_hi) {
    const double t = static_cast<double>(b - lo) / (hi - lo);
    return micros_[lo] + t * (micros_[hi] - micros_[lo]);
  }
  if (has_lo) return micros_[lo] * b / lo;  // beyond the largest measured size
  if (has_hi) return micros_[hi] * b / hi;  // below the smallest measured size
  return 0;
}

int64_t LatencyProfile::PredictMicros(int batch_size) const {
  absl::ReaderMutexLock lock(&mu_);
  return static_cast<int64_t>(std::llround(PredictLocked(batch_size)));
}

std::vector<LatencyProfile::Point> LatencyProfile::Snapshot() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<Point> out;
  for (int b = 1; b <= max_batch_size_; ++b) {
    const bool pow2 = (b & (b - 1)) == 0;
    if (!pow2 && b != max_batch_size_ && samples_[b] == 0) continue;
    out.push_back({b, PredictLocked(b), samples_[b] > 0, samples_[b]});
  }
  return out;
}

}  // namespace visionserve::policy
