#include "server/policy/latency_profile.h"

#include "gtest/gtest.h"

namespace visionserve::policy {
namespace {

TEST(LatencyProfileTest, PredictsNothingBeforeAnyMeasurement) {
  LatencyProfile p(32);
  EXPECT_EQ(p.PredictMicros(1), 0);
  EXPECT_EQ(p.PredictMicros(32), 0);
}

TEST(LatencyProfileTest, InterpolatesBetweenAndExtrapolatesBeyondMeasuredSizes) {
  LatencyProfile p(32);
  p.Record(1, 1000);
  p.Record(4, 2500);
  p.Record(8, 4500);
  EXPECT_EQ(p.PredictMicros(1), 1000);
  EXPECT_EQ(p.PredictMicros(2), 1500);  // 1000 + (2500 - 1000) / 3
  EXPECT_EQ(p.PredictMicros(6), 3500);
  EXPECT_EQ(p.PredictMicros(16), 9000);                  // 4500 * 16 / 8
  EXPECT_EQ(p.PredictMicros(100), p.PredictMicros(32));  // clamped to the table
}

TEST(LatencyProfileTest, OnlineSamplesMoveTheEstimateByAlpha) {
  LatencyProfile p(8, 0.5);
  p.Record(2, 1000);
  p.Record(2, 2000);
  EXPECT_EQ(p.PredictMicros(2), 1500);
  p.Record(2, 2000);
  EXPECT_EQ(p.PredictMicros(2), 1750);
  p.Record(0, 5);   // ignored
  p.Record(9, 5);   // ignored
  p.Record(2, -1);  // ignored
  EXPECT_EQ(p.PredictMicros(2), 1750);
}

TEST(LatencyProfileTest, SnapshotListsPowersOfTwoAndMeasuredSizes) {
  LatencyProfile p(12);
  p.Record(3, 300);
  p.Record(8, 800);
  const auto snap = p.Snapshot();
  std::vector<int> sizes;
  for (const auto& pt : snap) sizes.push_back(pt.batch_size);
  EXPECT_EQ(sizes, (std::vector<int>{1, 2, 3, 4, 8, 12}));
  EXPECT_TRUE(snap[2].measured);
  EXPECT_EQ(snap[2].samples, 1);
  EXPECT_FALSE(snap[3].measured);
  EXPECT_DOUBLE_EQ(snap[3].micros, 400);
  EXPECT_DOUBLE_EQ(snap[0].micros, 100);
}

}  // namespace
}  // namespace visionserve::policy
