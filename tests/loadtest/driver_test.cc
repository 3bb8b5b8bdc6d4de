// The driver and runner end to end over gRPC against FakeVisionServer: the latency distribution,
// status codes, arrival times and stalls are scripted, so what visionload reports can be checked
// against what is known to have happened.
#include "loadtest/driver.h"

#include <cmath>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "loadtest/grpc_transport.h"
#include "loadtest/runner.h"
#include "loadtest/workload.h"
#include "tests/loadtest/fake_vision_service.h"

namespace visionserve::loadtest {
namespace {

using namespace std::chrono_literals;
using testing::FakeAnswer;
using testing::FakeCall;
using testing::FakeVisionServer;

constexpr double kGolden = 0.6180339887498949;

double Ms(int64_t us) { return static_cast<double>(us) / 1e3; }

FakeAnswer At(Clock::time_point due, std::string variant = "fake") {
  FakeAnswer a;
  a.due = due;
  a.variant = std::move(variant);
  return a;
}

// The request's sequence number from its request_id ("t-<seq>").
int64_t Seq(const FakeCall& c) {
  int64_t seq = -1;
  const std::string& id = c.request->request_id();
  EXPECT_TRUE(absl::SimpleAtoi(id.substr(id.rfind('-') + 1), &seq)) << id;
  return seq;
}

class DriverTest : public ::testing::Test {
 protected:
  void Serve(testing::FakeScript script) {
    server_ = FakeVisionServer::Start(std::move(script));
    ASSERT_NE(server_, nullptr);
    auto t = GrpcTransport::Create({.address = server_->address(), .channels = 2});
    ASSERT_TRUE(t.ok()) << t.status();
    transport_ = std::move(*t);
    ASSERT_TRUE(transport_->WaitServing(absl::Seconds(10)).ok());
  }

  void MakeWorkload(const std::string& mix = "default") {
    WorkloadOptions o;
    o.width = o.height = 32;
    o.distinct_images = 2;
    auto targets = ParseMix(mix);
    ASSERT_TRUE(targets.ok());
    o.targets = *targets;
    auto w = Workload::Create(o);
    ASSERT_TRUE(w.ok()) << w.status();
    workload_ = std::move(*w);
  }

  StepSummary Run(StepConfig c) {
    if (!workload_) MakeWorkload();
    c.id_prefix = "t-";
    auto s = RunStep(c, *transport_, *workload_, nullptr, nullptr);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : StepSummary();
  }

  // Declared in this order so the transport (and its calls) go before the workload they read.
  std::unique_ptr<Workload> workload_;
  std::unique_ptr<FakeVisionServer> server_;
  std::unique_ptr<GrpcTransport> transport_;
};

TEST_F(DriverTest, ClosedLoopHoldsConcurrencyAndReportsTheServiceTimeDistribution) {
  // Service times spread evenly over [2, 22) ms (a low-discrepancy sequence, so even a short
  // run sees the whole distribution): p50 12 ms, p90 20 ms, p99 21.8 ms.
  Serve([](const FakeCall& c) {
    const double frac = std::fmod(static_cast<double>(c.index) * kGolden, 1.0);
    FakeAnswer a;
    a.due = c.arrival + std::chrono::microseconds(static_cast<int64_t>(2000 + 20000 * frac));
    a.variant = "fake-a";
    a.queue_us = 1000;
    a.compute_us = 3000;
    a.batch_size = 1 + static_cast<int>(c.index % 4);
    return a;
  });
  StepConfig c;
  c.concurrency = 8;
  c.warmup = 200ms;
  c.duration = 1200ms;
  const StepSummary s = Run(c);

  EXPECT_EQ(server_->max_in_flight(), 8);
  EXPECT_EQ(s.end_reason, "duration");
  EXPECT_GT(s.sent, 300);
  EXPECT_EQ(s.completed, s.sent);
  EXPECT_EQ(s.ok, s.sent);
  EXPECT_EQ(s.codes.at("OK"), s.sent);
  // The client sees the service time plus a little transport: never less, not much more.
  const double slack_ms = 4;
  EXPECT_GE(Ms(s.latency.min()), 2.0);
  for (const auto& [q, expected_ms] : {std::pair{0.5, 12.0}, {0.9, 20.0}, {0.99, 21.8}}) {
    const double got = Ms(s.latency.ValueAtQuantile(q));
    EXPECT_GE(got, expected_ms * 0.98 - 0.3) << "q " << q;
    EXPECT_LE(got, expected_ms + slack_ms) << "q " << q;
  }
  // Closed loop: throughput = concurrency / mean latency (12 ms + transport).
  EXPECT_LE(s.throughput_rps, 8 / 0.012 * 1.03);
  EXPECT_GE(s.throughput_rps, 8 / (0.012 + slack_ms / 1e3));
  EXPECT_NEAR(s.window_s, 1.2, 0.011);
  // The server-side breakdown is what the responses said.
  EXPECT_NEAR(Ms(s.queue.ValueAtQuantile(0.5)), 1.0, 0.01);
  EXPECT_NEAR(Ms(s.compute.ValueAtQuantile(0.99)), 3.0, 0.03);
  EXPECT_NEAR(s.mean_batch(), 2.5, 0.1);
  EXPECT_EQ(s.variants.size(), 1u);
  EXPECT_EQ(s.variants.at("fake-a"), s.ok);
  EXPECT_GT(s.cpu_s, 0);
  EXPECT_GT(s.cpu_us_per_request, 0);
}

TEST_F(DriverTest, OpenLoopConstantRateSendsOnScheduleAndThroughputFollows) {
  Serve([](const FakeCall& c) { return At(c.arrival + 1ms); });
  StepConfig c;
  c.open_loop = true;
  c.rate = 250;
  c.arrivals = Arrivals::kConstant;
  c.warmup = 200ms;
  c.duration = 1000ms;
  const StepSummary s = Run(c);

  // 250 intended send times fall in the 1 s window, 50 in the warm-up.
  EXPECT_EQ(s.sent, 250);
  EXPECT_EQ(s.calls_started, 300);
  EXPECT_EQ(server_->received(), 300);
  const auto arrivals = server_->arrivals();
  ASSERT_EQ(arrivals.size(), 300u);
  const double span_s = std::chrono::duration<double>(arrivals.back() - arrivals.front()).count();
  EXPECT_NEAR(299 / span_s, 250, 250 * 0.03);  // the rate the server saw
  // Evenly spaced: the median gap is 4 ms (single gaps also carry the delivery jitter of the
  // loopback and the server's threads, which is not the generator's doing).
  std::vector<double> gaps_ms;
  for (size_t i = 1; i < arrivals.size(); ++i) {
    gaps_ms.push_back(
        std::chrono::duration<double, std::milli>(arrivals[i] - arrivals[i - 1]).count());
  }
  std::nth_element(gaps_ms.begin(), gaps_ms.begin() + gaps_ms.size() / 2, gaps_ms.end());
  EXPECT_NEAR(gaps_ms[gaps_ms.size() / 2], 4.0, 0.3);
  EXPECT_NEAR(s.throughput_rps, 250, 250 * 0.05);
  // Sent on time, give or take the scheduler of a busy 2-core machine (sanitizers included).
  EXPECT_LT(Ms(s.send_lag.ValueAtQuantile(0.5)), 2.0);
  EXPECT_LT(Ms(s.send_lag.ValueAtQuantile(0.99)), 25.0);
  EXPECT_EQ(s.ok, 250);
}

TEST_F(DriverTest, OpenLoopPoissonArrivalsFollowTheSeededSchedule) {
  Serve([](const FakeCall& c) { return At(c.arrival + 1ms); });
  StepConfig c;
  c.open_loop = true;
  c.rate = 400;
  c.arrivals = Arrivals::kPoisson;
  c.seed = 7;
  c.duration = 1000ms;
  // The same process, replayed: how many intended times fall in the window.
  ArrivalProcess replay(Arrivals::kPoisson, 400, 7);
  int64_t expected = 0;
  while (replay.Next() < 1s) ++expected;
  const StepSummary s = Run(c);

  EXPECT_EQ(s.sent, expected);
  EXPECT_EQ(server_->received(), expected);
  // Exponential gaps: coefficient of variation about 1 (a constant rate would give about 0).
  const auto a = server_->arrivals();
  std::vector<double> gaps;
  for (size_t i = 1; i < a.size(); ++i)
    gaps.push_back(std::chrono::duration<double>(a[i] - a[i - 1]).count());
  const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / gaps.size();
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  const double cv = std::sqrt(var / gaps.size()) / mean;
  EXPECT_NEAR(mean, 1.0 / 400, 0.15 / 400);
  EXPECT_NEAR(cv, 1.0, 0.2);
}

TEST_F(DriverTest, CountsEveryStatusCodeExactly) {
  // By request number: 3 and 7 mod 10 fail with RESOURCE_EXHAUSTED / UNAVAILABLE, multiples of
  // 25 with INVALID_ARGUMENT, 11 mod 20 are answered after the client's 50 ms deadline.
  Serve([](const FakeCall& c) {
    const int64_t seq = Seq(c);
    FakeAnswer a = At(c.arrival + 1ms);
    if (seq % 10 == 3) {
      a.code = grpc::StatusCode::RESOURCE_EXHAUSTED;
      a.message = "queue full";
    } else if (seq % 10 == 7) {
      a.code = grpc::StatusCode::UNAVAILABLE;
      a.message = "draining";
    } else if (seq % 25 == 0) {
      a.code = grpc::StatusCode::INVALID_ARGUMENT;
      a.message = "bad image";
    } else if (seq % 20 == 11) {
      a.due = c.arrival + 300ms;
    }
    return a;
  });
  StepConfig c;
  c.concurrency = 4;
  c.max_requests = 300;
  c.deadline = 50ms;
  c.budget_us = 50'000;
  const StepSummary s = Run(c);

  EXPECT_EQ(s.end_reason, "requests");
  EXPECT_EQ(s.sent, 300);
  EXPECT_EQ(s.completed, 300);
  const std::map<std::string, int64_t> expected = {{"OK", 213},
                                                   {"RESOURCE_EXHAUSTED", 30},
                                                   {"UNAVAILABLE", 30},
                                                   {"INVALID_ARGUMENT", 12},
                                                   {"DEADLINE_EXCEEDED", 15}};
  EXPECT_EQ(s.codes, expected);
  EXPECT_EQ(s.ok, 213);
  EXPECT_EQ(s.ok_within_budget, 213);
  // What the server sent agrees (the late ones it answered OK, after the client gave up).
  const auto answered = server_->answered();
  EXPECT_EQ(answered.at(grpc::StatusCode::RESOURCE_EXHAUSTED), 30);
  EXPECT_EQ(answered.at(grpc::StatusCode::UNAVAILABLE), 30);
  EXPECT_EQ(answered.at(grpc::StatusCode::INVALID_ARGUMENT), 12);
  EXPECT_EQ(s.error_samples.at("RESOURCE_EXHAUSTED: queue full"), 30);
  EXPECT_EQ(s.error_samples.at("INVALID_ARGUMENT: bad image"), 12);
  EXPECT_EQ(s.latency_all.count(), 300);
  EXPECT_EQ(s.latency.count(), 213);
  // Deadline failures take about the deadline.
  EXPECT_GE(Ms(s.latency_all.max()), 49.0);
}

TEST_F(DriverTest, OpenLoopChargesAStallToEveryRequestItHeldUp) {
  // Call 50 (t = 0.5 s) is held 200 ms. With one call allowed in flight the generator cannot
  // send during the stall: a tool that timed from the actual send would see one slow call
  // (coordinated omission). Measured from the intended times, the ~20 calls held up show
  // latencies from 200 ms down to 10 ms.
  Serve([](const FakeCall& c) { return At(c.arrival + (c.index == 50 ? 200ms : 1ms)); });
  StepConfig c;
  c.open_loop = true;
  c.rate = 100;
  c.arrivals = Arrivals::kConstant;
  c.duration = 2s;
  c.max_outstanding = 1;
  const StepSummary s = Run(c);

  EXPECT_EQ(s.sent, 200);
  EXPECT_EQ(s.ok, 200);
  EXPECT_GE(Ms(s.latency.max()), 195);
  EXPECT_GE(Ms(s.latency.ValueAtQuantile(0.99)), 170);
  EXPECT_GE(s.latency.CountAbove(100'000), 9);
  EXPECT_GE(s.latency.CountAbove(20'000), 17);
  EXPECT_LE(Ms(s.latency.ValueAtQuantile(0.5)), 5);
  // The generator says it was held back.
  EXPECT_GE(Ms(s.send_lag.max()), 180);
  EXPECT_EQ(s.max_outstanding, 1);
}

TEST_F(DriverTest, OpenLoopKeepsSendingWhileTheServerStalls) {
  // Everything arriving in [0.5 s, 0.7 s) is answered at 0.7 s: the generator must keep
  // sending on schedule and report the stall for all of those calls.
  Clock::time_point first{};
  Serve([&first](const FakeCall& c) {
    if (c.index == 0) first = c.arrival;
    const auto t = c.arrival - first;
    FakeAnswer a = At(c.arrival + 1ms);
    if (t >= 500ms && t < 700ms) a.due = first + 700ms;
    return a;
  });
  StepConfig c;
  c.open_loop = true;
  c.rate = 100;
  c.arrivals = Arrivals::kConstant;
  c.duration = 1500ms;
  const StepSummary s = Run(c);

  EXPECT_EQ(s.sent, 150);
  EXPECT_EQ(server_->received(), 150);
  EXPECT_GE(s.max_outstanding, 15);
  EXPECT_GE(s.latency.CountAbove(100'000), 8);
  EXPECT_GE(Ms(s.latency.ValueAtQuantile(0.99)), 150);
  // No waiting on the generator's side (the stall is 200 ms; the margin is for a busy machine).
  EXPECT_LT(Ms(s.send_lag.ValueAtQuantile(0.99)), 50);
}

TEST_F(DriverTest, StopsByItselfWhenTheServerNeverAnswers) {
  Serve([](const FakeCall& c) { return At(c.arrival + 1h); });
  StepConfig c;
  c.concurrency = 3;
  c.duration = 300ms;
  c.drain_timeout = 200ms;
  const auto t0 = Clock::now();
  const StepSummary s = Run(c);
  EXPECT_LT(Clock::now() - t0, 3s);
  EXPECT_TRUE(s.drain_timed_out);
  EXPECT_EQ(s.sent, 3);
  EXPECT_EQ(s.codes.at("CANCELLED"), 3);
  EXPECT_EQ(s.ok, 0);
}

TEST_F(DriverTest, HardCapEndsARequestBoundStep) {
  Serve([](const FakeCall& c) { return At(c.arrival + 1h); });
  StepConfig c;
  c.open_loop = true;
  c.rate = 50;
  c.max_requests = 1000;  // would take 20 s
  c.hard_cap = 400ms;
  const auto t0 = Clock::now();
  const StepSummary s = Run(c);
  EXPECT_LT(Clock::now() - t0, 3s);
  EXPECT_EQ(s.end_reason, "hard cap");
  EXPECT_NEAR(static_cast<double>(s.sent), 20, 2);
  EXPECT_EQ(s.codes.at("CANCELLED"), s.sent);
}

TEST_F(DriverTest, WeightedMixReachesTheServerInProportion) {
  Serve([](const FakeCall& c) { return At(c.arrival + 1ms, "v-" + c.request->model()); });
  MakeWorkload("model:a@3;model:b@1");
  StepConfig c;
  c.concurrency = 4;
  c.max_requests = 400;
  const StepSummary s = Run(c);
  ASSERT_EQ(s.ok, 400);
  EXPECT_NEAR(static_cast<double>(s.variants.at("v-a")), 300, 30);
  EXPECT_EQ(s.variants.at("v-a") + s.variants.at("v-b"), 400);
  EXPECT_EQ(server_->models().at("a"), s.variants.at("v-a"));
  EXPECT_EQ(server_->models().at("b"), s.variants.at("v-b"));
  // The timeline saw the same mix.
  int64_t a = 0;
  for (const auto& p : s.timeline) a += p.variants.count("v-a") ? p.variants.at("v-a") : 0;
  EXPECT_EQ(a, s.variants.at("v-a"));
}

TEST_F(DriverTest, SearchFindsTheCapacityOfASingleServerQueue) {
  // One FIFO server with a 4 ms service time: capacity 250/s. Below it latency stays at 4 ms;
  // above it the queue (and p99) grows for as long as the step lasts.
  auto busy_until = std::make_shared<Clock::time_point>();
  Serve([busy_until](const FakeCall& c) {
    *busy_until = std::max(*busy_until, c.arrival) + 4ms;
    return At(*busy_until);
  });
  MakeWorkload();
  RunPlan plan;
  plan.mode = Mode::kSearch;
  plan.target_p99_ms = 30;
  plan.search = {
      .min_rate = 50, .max_rate = 800, .start_rate = 50, .precision = 0.1, .max_steps = 7};
  plan.step.arrivals = Arrivals::kConstant;
  plan.step.warmup = 100ms;
  plan.step.duration = 400ms;
  plan.step.id_prefix = "t-";
  auto r = RunLoad(plan, *transport_, *workload_, nullptr, {}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->search.has_value());
  std::string trace;
  for (size_t i = 0; i < r->steps.size(); ++i) {
    absl::StrAppend(&trace, r->steps[i].offered_rate, "/s: ", r->verdicts[i], "; ");
  }
  SCOPED_TRACE(trace);
  EXPECT_GE(r->search->best_rate, 200);
  EXPECT_LE(r->search->best_rate, 260);
  EXPECT_GT(r->search->lowest_failing_rate, r->search->best_rate);
  EXPECT_LE(r->search->lowest_failing_rate, 400);
  ASSERT_EQ(r->steps.size(), r->verdicts.size());
  EXPECT_EQ(r->verdicts[0], "pass");  // 50/s
  EXPECT_EQ(r->steps[0].offered_rate, 50);
  EXPECT_EQ(r->steps[3].offered_rate, 400);
  EXPECT_NE(r->verdicts[3], "pass");
}

}  // namespace
}  // namespace visionserve::loadtest
