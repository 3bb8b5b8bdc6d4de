#include "loadtest/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace visionserve::loadtest {
namespace {

// The exact value of rank max(1, ceil(q * n)) in sorted order: what ValueAtQuantile promises
// to approximate.
int64_t ExactQuantile(std::vector<int64_t> v, double q) {
  std::sort(v.begin(), v.end());
  const size_t rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * v.size())));
  return v[rank - 1];
}

TEST(HistogramTest, EmptyReportsZeros) {
  Histogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.mean(), 0);
  EXPECT_EQ(h.CountAbove(0), 0);
  EXPECT_TRUE(h.NonEmptyBuckets().empty());
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h(7);
  for (int64_t v = 0; v < 128; ++v) h.Record(v);
  for (double q : {0.01, 0.25, 0.5, 0.75, 0.99}) {
    std::vector<int64_t> all(128);
    for (int i = 0; i < 128; ++i) all[i] = i;
    EXPECT_EQ(h.ValueAtQuantile(q), ExactQuantile(all, q)) << q;
  }
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 127);
  EXPECT_DOUBLE_EQ(h.mean(), 63.5);
}

TEST(HistogramTest, QuantilesStayWithinTheStatedRelativeErrorOverSixDecades) {
  // Log-normal latencies from ~10 us to ~10 s, at two precisions.
  for (int bits : {4, 7, 10}) {
    Histogram h(bits);
    std::mt19937_64 rng(bits);
    std::lognormal_distribution<double> d(std::log(5000.0), 2.0);
    std::vector<int64_t> values;
    for (int i = 0; i < 200000; ++i) {
      const auto v = static_cast<int64_t>(std::min(d(rng), 1e10));
      values.push_back(v);
      h.Record(v);
    }
    const double tolerance = h.relative_error();
    EXPECT_DOUBLE_EQ(tolerance, std::ldexp(1.0, -(bits + 1)));
    for (double q : {0.0, 0.001, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0}) {
      const int64_t exact = ExactQuantile(values, q);
      const int64_t got = h.ValueAtQuantile(q);
      EXPECT_LE(std::abs(got - exact), std::max<double>(1.0, tolerance * exact))
          << "bits " << bits << " q " << q << " exact " << exact << " got " << got;
    }
    EXPECT_EQ(h.ValueAtQuantile(1.0), *std::max_element(values.begin(), values.end()));
    EXPECT_EQ(h.min(), *std::min_element(values.begin(), values.end()));
    EXPECT_EQ(h.count(), 200000);
  }
}

TEST(HistogramTest, HugeAndNegativeValuesAreHeld) {
  Histogram h;
  h.Record(std::numeric_limits<int64_t>::max());
  h.Record(-5);  // as 0
  h.Record(int64_t{1} << 40);
  EXPECT_EQ(h.count(), 3);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(h.ValueAtQuantile(1.0), std::numeric_limits<int64_t>::max());
  const int64_t mid = h.ValueAtQuantile(0.5);
  EXPECT_NEAR(static_cast<double>(mid), std::ldexp(1.0, 40),
              std::ldexp(1.0, 40) * h.relative_error());
  const auto buckets = h.NonEmptyBuckets();
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets.back().high, std::numeric_limits<int64_t>::max());
  for (const auto& b : buckets) EXPECT_LE(b.low, b.high);
}

TEST(HistogramTest, MergeEqualsRecordingEverythingInOne) {
  Histogram a, b, all;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int64_t> d(0, 5'000'000);
  for (int i = 0; i < 10000; ++i) {
    const int64_t v = d(rng);
    (i % 3 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (double q : {0.1, 0.5, 0.99}) EXPECT_EQ(a.ValueAtQuantile(q), all.ValueAtQuantile(q));
  a.Reset();
  EXPECT_EQ(a.count(), 0);
  EXPECT_EQ(a.ValueAtQuantile(0.5), 0);
}

TEST(HistogramTest, CountAboveCountsWholeBucketsAboveTheValue) {
  Histogram h(7);
  for (int64_t v = 1; v <= 1000; ++v) h.Record(v * 1000);  // 1 ms .. 1 s in us
  EXPECT_EQ(h.CountAbove(0), 1000);
  EXPECT_EQ(h.CountAbove(1'000'000), 0);
  // Above 500 ms: 500 values, give or take the one bucket holding 500 ms.
  EXPECT_NEAR(static_cast<double>(h.CountAbove(500'000)), 500, 4);
  EXPECT_EQ(h.CountAbove(-1), 1000);
}

TEST(HistogramTest, CountsWithWeights) {
  Histogram h;
  h.Record(10, 99);
  h.Record(1000, 1);
  EXPECT_EQ(h.count(), 100);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 10);
  EXPECT_EQ(h.ValueAtQuantile(0.995), 1000);
  h.Record(5, 0);  // ignored
  EXPECT_EQ(h.count(), 100);
}

}  // namespace
}  // namespace visionserve::loadtest
