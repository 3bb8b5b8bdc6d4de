#include "loadtest/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace visionserve::loadtest {

Histogram::Histogram(int sub_bucket_bits)
    : sub_bucket_bits_(std::clamp(sub_bucket_bits, 1, 16)),
      sub_bucket_count_(int64_t{1} << sub_bucket_bits_),
      counts_(static_cast<size_t>((64 - sub_bucket_bits_) * sub_bucket_count_)) {}

double Histogram::relative_error() const { return std::ldexp(1.0, -(sub_bucket_bits_ + 1)); }

int Histogram::BucketIndex(int64_t value) const {
  if (value < sub_bucket_count_) return static_cast<int>(value);
  const int log2 = 63 - std::countl_zero(static_cast<uint64_t>(value));
  const int shift = log2 - sub_bucket_bits_;
  return static_cast<int>((shift + 1) * sub_bucket_count_ + ((value >> shift) - sub_bucket_count_));
}

int64_t Histogram::BucketLow(int index) const {
  if (index < sub_bucket_count_) return index;
  const int shift = static_cast<int>(index / sub_bucket_count_) - 1;
  const int64_t offset = index % sub_bucket_count_;
  return (sub_bucket_count_ + offset) << shift;
}

int64_t Histogram::BucketHigh(int index) const {
  if (index < sub_bucket_count_) return index;
  const int shift = static_cast<int>(index / sub_bucket_count_) - 1;
  // low + width - 1 <= INT64_MAX (the last bucket ends exactly there); low + width may not be.
  return BucketLow(index) + ((int64_t{1} << shift) - 1);
}

void Histogram::Record(int64_t value, int64_t count) {
  if (count <= 0) return;
  value = std::max<int64_t>(value, 0);
  counts_[BucketIndex(value)] += count;
  if (count_ == 0 || value < min_) min_ = value;
  max_ = std::max(max_, value);
  count_ += count;
  sum_ += static_cast<double>(value) * static_cast<double>(count);
}

void Histogram::Merge(const Histogram& other) {
  if (other.sub_bucket_bits_ != sub_bucket_bits_) std::abort();  // a programming error
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

void Histogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = max_ = 0;
  sum_ = 0;
}

int64_t Histogram::ValueAtQuantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const int64_t rank =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(q * static_cast<double>(count_))));
  if (rank >= count_) return max_;
  int64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const int index = static_cast<int>(i);
      const int64_t low = BucketLow(index), high = BucketHigh(index);
      return std::clamp(low + (high - low) / 2, min_, max_);
    }
  }
  return max_;
}

int64_t Histogram::CountAbove(int64_t value) const {
  if (count_ == 0 || value >= max_) return 0;
  if (value < 0) return count_;
  int64_t above = 0;
  for (size_t i = static_cast<size_t>(BucketIndex(value)) + 1; i < counts_.size(); ++i) {
    above += counts_[i];
  }
  return above;
}

std::vector<Histogram::Bucket> Histogram::NonEmptyBuckets() const {
  std::vector<Bucket> out;
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] == 0) continue;
    const int index = static_cast<int>(i);
    out.push_back({BucketLow(index), BucketHigh(index), counts_[i]});
  }
  return out;
}

}  // namespace visionserve::loadtest
