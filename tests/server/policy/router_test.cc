#include "server/policy/router.h"

#include "gtest/gtest.h"

namespace visionserve::policy {
namespace {

// base + per_image * b microseconds per batch of b.
class Linear : public batching::LatencyModel {
 public:
  Linear(int64_t base, int64_t per_image) : base_(base), per_(per_image) {}
  int64_t PredictMicros(int b) const override { return base_ + per_ * b; }

 private:
  int64_t base_, per_;
};

class RouterTest : public ::testing::Test {
 protected:
  // Like the default set: a fast/less accurate, a middle and a slow/accurate model.
  Linear fast_{1000, 4000}, mid_{1000, 5000}, slow_{2000, 38000};
  std::vector<Candidate> Models(int fast_queue = 0, int mid_queue = 0, int slow_queue = 0) {
    return {
        {"regnet_y_400mf", "regnet", 75.8, &fast_, 32, 1, fast_queue, 0},
        {"efficientnet_b0", "efficientnet", 77.7, &mid_, 32, 1, mid_queue, 0},
        {"convnext_tiny", "convnext", 82.5, &slow_, 32, 1, slow_queue, 0},
    };
  }
  static constexpr int64_t kNow = 1'000'000;
};

TEST_F(RouterTest, PredictsQueueWaitPlusServiceTime) {
  Candidate c{"m", "f", 80, &fast_, 4, 1, 0, 0};
  EXPECT_EQ(PredictCompletionMicros(c), 5000);  // alone in a batch of 1
  c.queue_depth = 2;
  EXPECT_EQ(PredictCompletionMicros(c), 13000);  // joins a batch of 3
  c.queue_depth = 9;                             // two full batches ahead, joins a batch of 2
  EXPECT_EQ(PredictCompletionMicros(c), 2 * 17000 + 9000);
  c.in_flight = 1;  // the only instance is busy: half a full batch on average
  EXPECT_EQ(PredictCompletionMicros(c), 8500 + 2 * 17000 + 9000);
  c.instances = 2;  // not every instance busy; the queue drains twice as fast
  EXPECT_EQ(PredictCompletionMicros(c), 17000 + 9000);
}

TEST_F(RouterTest, MostAccurateWithinBudget) {
  Policy p{"balanced", 100, 0, Objective::kMostAccurate, {}, OnMiss::kServeFastest};
  auto d = Choose(p, Models(), kNow, batching::kNoDeadline);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->index, 2);  // convnext: 40 ms < 100 ms
  EXPECT_NE(d->reason.find("most accurate"), std::string::npos);
}

TEST_F(RouterTest, OverloadShiftsTrafficToCheaperVariants) {
  Policy p{"balanced", 100, 0, Objective::kMostAccurate, {}, OnMiss::kServeFastest};
  // 3 images queued on convnext: 4 x 38 ms + 2 ms > 100 ms; efficientnet still fits.
  auto d = Choose(p, Models(0, 0, 3), kNow, batching::kNoDeadline);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->index, 1);
  // Deep queues everywhere but regnet.
  d = Choose(p, Models(0, 40, 40), kNow, batching::kNoDeadline);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->index, 0);
  // Nothing fits: the fastest is served anyway, and the reason says so.
  d = Choose(p, Models(60, 60, 60), kNow, batching::kNoDeadline);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->index, 0);
  EXPECT_NE(d->reason.find("serving the fastest"), std::string::npos);
}

TEST_F(RouterTest, RejectingPoliciesAnswerDeadlineExceededWhenNothingFits) {
  Policy p{"realtime", 3, 0, Objective::kFastest, {}, OnMiss::kReject};
  auto d = Choose(p, Models(), kNow, batching::kNoDeadline);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(d.status().message().find("regnet_y_400mf"), std::string::npos);
}

TEST_F(RouterTest, TheCallDeadlineTightensTheBudget) {
  Policy p{"best", 1000, 0, Objective::kMostAccurate, {}, OnMiss::kReject};
  auto d = Choose(p, Models(), kNow, kNow + 20'000);  // 20 ms left: convnext cannot make it
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->index, 1);
}

TEST_F(RouterTest, FastestMeetingTheFloor) {
  Policy p{"floor", 0, 77, Objective::kFastest, {}, OnMiss::kReject};
  auto d = Choose(p, Models(), kNow, batching::kNoDeadline);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->index, 1);  // regnet is below the floor
  p.min_top1 = 90;
  EXPECT_EQ(Choose(p, Models(), kNow, batching::kNoDeadline).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RouterTest, FamilyFilter) {
  Policy p{"conv", 0, 0, Objective::kFastest, {"convnext"}, OnMiss::kReject};
  auto d = Choose(p, Models(), kNow, batching::kNoDeadline);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->index, 2);
  p.families = {"vit"};
  auto e = Choose(p, Models(), kNow, batching::kNoDeadline);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("vit"), std::string::npos);
}

TEST(BuiltinPoliciesTest, ShipRealtimeBalancedBest) {
  const auto p = BuiltinPolicies();
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].name, "realtime");
  EXPECT_EQ(p[1].name, "balanced");
  EXPECT_EQ(p[2].name, "best");
  EXPECT_EQ(p[1].on_miss, OnMiss::kServeFastest);
}

}  // namespace
}  // namespace visionserve::policy
