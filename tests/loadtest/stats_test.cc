#include "loadtest/stats.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace visionserve::loadtest {
namespace {

using namespace std::chrono_literals;

class StepCollectorTest : public ::testing::Test {
 protected:
  const Clock::time_point t0_ = Clock::now();

  // A call intended at `at`, sent `lag` later, answered `latency` after it was intended.
  Outcome Call(Clock::duration at, Clock::duration latency, bool measured,
               absl::StatusCode code = absl::StatusCode::kOk, Clock::duration lag = 0ms) {
    Outcome o;
    o.code = code;
    o.intended = t0_ + at;
    o.sent = o.intended + lag;
    o.done = o.intended + latency;
    o.measured = measured;
    o.variant = "v1";
    if (code != absl::StatusCode::kOk) o.message = "boom";
    return o;
  }
};

TEST_F(StepCollectorTest, WarmUpCallsStayOutOfTheMeasuredPopulation) {
  StepCollector c({.start = t0_, .interval = 1s, .budget_us = 0});
  for (int i = 0; i < 10; ++i) c.Record(Call(i * 10ms, 500ms, /*measured=*/false));
  for (int i = 0; i < 5; ++i) c.Record(Call(1s + i * 10ms, 20ms, /*measured=*/true));
  StepSummary s;
  c.Finish(t0_ + 1s, t0_ + 2s, &s);
  EXPECT_EQ(s.completed, 5);
  EXPECT_EQ(s.ok, 5);
  EXPECT_EQ(s.latency.count(), 5);
  EXPECT_EQ(s.latency.max(), 20000);
  EXPECT_EQ(s.codes.at("OK"), 5);
  // The timeline holds every completion: 10 at 0.5 s, 5 at 1.0x s.
  ASSERT_EQ(s.timeline.size(), 2u);
  EXPECT_EQ(s.timeline[0].ok, 10);
  EXPECT_EQ(s.timeline[1].ok, 5);
  EXPECT_EQ(s.timeline[0].variants.at("v1"), 10);
  EXPECT_EQ(s.timeline[0].p50_us, 500000);  // one value: exact (clamped to min/max)
}

TEST_F(StepCollectorTest, ThroughputCountsAnswersReceivedDuringTheWindow) {
  StepCollector c({.start = t0_, .interval = 1s, .budget_us = 0});
  // 100 answers in each of the seconds 0, 1, 2, 3 (answered at i * 10 ms within the second).
  for (int sec = 0; sec < 4; ++sec) {
    for (int i = 0; i < 100; ++i) {
      c.Record(Call(sec * 1s + i * 10ms - 5ms, 5ms, /*measured=*/sec == 1 || sec == 2));
    }
  }
  StepSummary s;
  c.Finish(t0_ + 1s, t0_ + 3s, &s);
  EXPECT_DOUBLE_EQ(s.window_s, 2.0);
  EXPECT_DOUBLE_EQ(s.throughput_rps, 100);
  EXPECT_DOUBLE_EQ(s.goodput_rps, 100);
  EXPECT_DOUBLE_EQ(s.images_per_s, 100);
  EXPECT_EQ(s.completed, 200);
  // A window edge inside a 10 ms bucket widens to the whole bucket.
  StepSummary t;
  c.Finish(t0_ + 1s, t0_ + 3s - 3ms, &t);
  EXPECT_DOUBLE_EQ(t.window_s, 2.0);
}

TEST_F(StepCollectorTest, GoodputMeasuresTheBudgetFromTheIntendedSendTime) {
  StepCollector c({.start = t0_, .interval = 1s, .budget_us = 50'000});
  c.Record(Call(100ms, 40ms, true));                                       // good
  c.Record(Call(200ms, 60ms, true));                                       // late
  c.Record(Call(300ms, 45ms, true, absl::StatusCode::kOk, /*lag=*/30ms));  // 45 ms from intent
  c.Record(Call(400ms, 80ms, true, absl::StatusCode::kOk, /*lag=*/60ms));  // 20 ms from send
  c.Record(Call(500ms, 10ms, true, absl::StatusCode::kUnavailable));       // fast but failed
  StepSummary s;
  c.Finish(t0_, t0_ + 1s, &s);
  EXPECT_EQ(s.ok, 4);
  EXPECT_EQ(s.ok_within_budget, 2);
  EXPECT_DOUBLE_EQ(s.goodput_rps, 2);
  EXPECT_DOUBLE_EQ(s.throughput_rps, 4);
  EXPECT_DOUBLE_EQ(s.errors_per_s, 1);
  EXPECT_EQ(s.send_lag.max(), 60000);
  EXPECT_EQ(s.latency_all.count(), 5);
  EXPECT_NEAR(s.error_fraction(), 0.2, 1e-12);
}

TEST_F(StepCollectorTest, KeepsTheServerBreakdownAndBatchSizesPerImage) {
  StepCollector c({.start = t0_, .interval = 1s, .budget_us = 0});
  for (int i = 0; i < 4; ++i) {
    Outcome o = Call(i * 1ms, 10ms, true);
    o.images = 2;
    o.server.queue_us = 1000 * (i + 1);
    o.server.compute_us = 5000;
    o.server.total_us = 8000;
    o.server.batch_sizes = {i + 1, i + 1};
    o.variant = i < 3 ? "small" : "big";
    c.Record(o);
  }
  StepSummary s;
  c.Finish(t0_, t0_ + 1s, &s);
  EXPECT_EQ(s.queue.min(), 1000);
  EXPECT_EQ(s.queue.max(), 4000);
  EXPECT_EQ(s.compute.ValueAtQuantile(0.5), 5000);
  EXPECT_EQ(s.server_total.ValueAtQuantile(0.5), 8000);
  EXPECT_EQ(s.batch_sizes, (std::map<int, int64_t>{{1, 2}, {2, 2}, {3, 2}, {4, 2}}));
  EXPECT_DOUBLE_EQ(s.mean_batch(), 2.5);
  EXPECT_EQ(s.images_ok, 8);
  EXPECT_EQ(s.variants, (std::map<std::string, int64_t>{{"big", 1}, {"small", 3}}));
}

TEST_F(StepCollectorTest, ErrorSamplesKeepTheFirstKindsAndCountThem) {
  StepCollector c({.start = t0_, .interval = 1s, .budget_us = 0});
  for (int i = 0; i < 20; ++i) {
    Outcome o = Call(i * 1ms, 1ms, true, absl::StatusCode::kInternal);
    const std::string message = absl::StrCat("error ", i % 12);
    o.message = message;
    c.Record(o);
  }
  StepSummary s;
  c.Finish(t0_, t0_ + 1s, &s);
  EXPECT_EQ(s.codes.at("INTERNAL"), 20);
  EXPECT_EQ(s.error_samples.size(), 8u);
  EXPECT_EQ(s.error_samples.at("INTERNAL: error 0"), 2);  // i = 0 and 12
  EXPECT_EQ(s.error_samples.count("INTERNAL: error 9"), 0u);
}

TEST_F(StepCollectorTest, SnapshotShowsTheLastFinishedInterval) {
  StepCollector c({.start = t0_, .interval = 100ms, .budget_us = 0});
  for (int i = 0; i < 7; ++i) c.Record(Call(110ms + i * 1ms, 5ms, false));
  c.Record(Call(120ms, 5ms, false, absl::StatusCode::kAborted));
  const StepCollector::Live live = c.Snapshot(t0_ + 250ms);
  EXPECT_EQ(live.completed, 8);
  EXPECT_EQ(live.ok, 7);
  EXPECT_EQ(live.errors, 1);
  EXPECT_EQ(live.last.ok, 7);
  EXPECT_EQ(live.last.errors, 1);
  EXPECT_NEAR(live.last.start_s, 0.1, 1e-9);
  EXPECT_EQ(c.Snapshot(t0_ + 50ms).last.ok, 0);  // no interval finished yet
}

TEST(CodeNameTest, GrpcNames) {
  EXPECT_EQ(CodeName(absl::StatusCode::kOk), "OK");
  EXPECT_EQ(CodeName(absl::StatusCode::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_EQ(CodeName(static_cast<absl::StatusCode>(42)), "CODE_42");
}

}  // namespace
}  // namespace visionserve::loadtest
