#pragma once

// An HDR-style log-bucketed histogram of non-negative integers (visionload records latencies in
// microseconds).
//
// Layout: values below 2^sub_bucket_bits are counted exactly; every power-of-two range above is
// split into 2^sub_bucket_bits equal buckets. A quantile is reported as the midpoint of its
// bucket, clamped to the exact [min, max], so it is within a relative 2^-(sub_bucket_bits + 1)
// of the recorded value at that rank (0.4% at the default 7 bits). Memory is fixed
// ((64 - bits) * 2^bits counters, 58 KiB at 7 bits), recording is O(1) and allocation-free, and
// two histograms of the same precision merge by adding counters.
//
// Not thread-safe: the caller serializes access.

#include <cstdint>
#include <vector>

namespace visionserve::loadtest {

class Histogram {
 public:
  static constexpr int kDefaultSubBucketBits = 7;

  // sub_bucket_bits in [1, 16].
  explicit Histogram(int sub_bucket_bits = kDefaultSubBucketBits);

  // Negative values are recorded as 0.
  void Record(int64_t value, int64_t count = 1);
  // Adds `other`'s counts; both must have the same sub_bucket_bits (CHECKed: a programming error).
  void Merge(const Histogram& other);
  void Reset();

  int64_t count() const { return count_; }
  int64_t min() const { return count_ ? min_ : 0; }
  int64_t max() const { return max_; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  int sub_bucket_bits() const { return sub_bucket_bits_; }
  // The bound on |reported - recorded| / recorded for a quantile.
  double relative_error() const;

  // The value at quantile q in [0, 1]: the recorded value of rank max(1, ceil(q * count)) in
  // sorted order, within relative_error(). q = 1 is the exact max; 0 when empty.
  int64_t ValueAtQuantile(double q) const;
  // How many recorded values are above `value`, exact when `value` is a bucket's upper edge and
  // otherwise counting `value`'s whole bucket as not above.
  int64_t CountAbove(int64_t value) const;

  // Non-empty buckets in increasing order; `high` is the largest value the bucket holds.
  struct Bucket {
    int64_t low = 0, high = 0, count = 0;
  };
  std::vector<Bucket> NonEmptyBuckets() const;

 private:
  int BucketIndex(int64_t value) const;
  int64_t BucketLow(int index) const;
  int64_t BucketHigh(int index) const;

  int sub_bucket_bits_;
  int64_t sub_bucket_count_;
  std::vector<int64_t> counts_;
  int64_t count_ = 0;
  int64_t min_ = 0, max_ = 0;
  double sum_ = 0;
};

}  // namespace visionserve::loadtest
