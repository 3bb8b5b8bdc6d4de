#include "server/batching/batch_queue.h"

#include <atomic>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace visionserve::batching {
namespace {

// Service time: 1000 us + 100 us per image.
class LinearLatency : public LatencyModel {
 public:
  int64_t PredictMicros(int b) const override { return 1000 + 100 * b; }
};

std::unique_ptr<BatchTask> MakeTask(int id, std::vector<int>* done_ids, int priority = 0,
                                    int64_t deadline = kNoDeadline) {
  auto t = std::make_unique<BatchTask>();
  t->priority = priority;
  t->deadline_us = deadline;
  t->done = [id, done_ids](const absl::Status&, const TaskTiming&) { done_ids->push_back(id); };
  return t;
}

class BatchQueueTest : public ::testing::Test {
 protected:
  BatchingOptions Options() {
    BatchingOptions o;
    o.max_batch_size = 4;
    o.max_queue_delay_us = 2000;
    o.max_queue_size = 6;
    o.priority_levels = 2;
    return o;
  }
  void Push(BatchQueue& q, int id, int64_t now, int priority = 0, int64_t deadline = kNoDeadline) {
    auto t = MakeTask(id, &done_, priority, deadline);
    ASSERT_TRUE(q.Push(t, now).ok());
    ASSERT_EQ(t, nullptr);
  }
  // Runs the batch's done callbacks and returns the ids in batch order.
  std::vector<int> Run(std::vector<std::unique_ptr<BatchTask>>& batch) {
    done_.clear();
    for (auto& t : batch) t->done(absl::OkStatus(), {});
    return done_;
  }
  LinearLatency latency_;
  std::vector<int> done_;
};

TEST_F(BatchQueueTest, WaitsForMoreTasksUntilTheDelayIsDue) {
  BatchQueue q(Options(), &latency_);
  Push(q, 1, 1000);
  auto d = q.Poll(1000, true, false);
  EXPECT_TRUE(d.batch.empty());
  EXPECT_EQ(d.wake_at_us, 3000);
  Push(q, 2, 1500);
  d = q.Poll(2999, true, false);
  EXPECT_TRUE(d.batch.empty());
  d = q.Poll(3000, true, false);
  ASSERT_EQ(d.batch.size(), 2u);
  EXPECT_EQ(d.reason, "max_queue_delay");
  EXPECT_EQ(Run(d.batch), (std::vector<int>{1, 2}));
  EXPECT_EQ(q.size(), 0);
}

TEST_F(BatchQueueTest, DispatchesAFullBatchAtOnceAndKeepsTheRest) {
  BatchQueue q(Options(), &latency_);
  for (int i = 1; i <= 5; ++i) Push(q, i, 1000);
  auto d = q.Poll(1000, true, false);
  ASSERT_EQ(d.batch.size(), 4u);
  EXPECT_EQ(d.reason, "full");
  EXPECT_EQ(Run(d.batch), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(q.size(), 1);
}

TEST_F(BatchQueueTest, HoldsBatchesWhileNoInstanceIsFree) {
  BatchQueue q(Options(), &latency_);
  for (int i = 1; i <= 4; ++i) Push(q, i, 1000);
  EXPECT_TRUE(q.Poll(5000, false, false).batch.empty());
  EXPECT_EQ(q.Poll(5000, true, false).batch.size(), 4u);
}

TEST_F(BatchQueueTest, FullQueueIsUnavailableAndLeavesTheTaskWithTheCaller) {
  BatchQueue q(Options(), &latency_);
  for (int i = 1; i <= 6; ++i) Push(q, i, 1000);
  auto t = MakeTask(7, &done_);
  const absl::Status s = q.Push(t, 1000);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("queue full"), std::string::npos);
  EXPECT_NE(t, nullptr);
  EXPECT_TRUE(done_.empty());
}

TEST_F(BatchQueueTest, RejectsPrioritiesOutOfRange) {
  BatchQueue q(Options(), &latency_);
  auto t = MakeTask(1, &done_, /*priority=*/2);
  EXPECT_EQ(q.Push(t, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t, nullptr);
}

TEST_F(BatchQueueTest, HigherPriorityFirstFifoWithinAPriority) {
  BatchQueue q(Options(), &latency_);
  Push(q, 1, 1000, 1);
  Push(q, 2, 1001, 0);
  Push(q, 3, 1002, 1);
  Push(q, 4, 1003, 0);
  Push(q, 5, 1004, 0);
  auto d = q.Poll(1004, true, false);
  ASSERT_EQ(d.batch.size(), 4u);
  EXPECT_EQ(Run(d.batch), (std::vector<int>{2, 4, 5, 1}));
}

TEST_F(BatchQueueTest, DropsTasksThatCanNoLongerMeetTheirDeadline) {
  BatchQueue q(Options(), &latency_);
  // A batch of one takes 1100 us: a deadline 1000 us away cannot be met.
  Push(q, 1, 1000, 0, 2000);
  Push(q, 2, 1000, 0, 50'000);
  auto d = q.Poll(1000, true, false);
  ASSERT_EQ(d.dropped.size(), 1u);
  EXPECT_EQ(d.dropped[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(d.dropped[0].status.message().find("cannot finish in time"), std::string::npos);
  EXPECT_EQ(q.size(), 1);
}

TEST_F(BatchQueueTest, DispatchesEarlyWhenWaitingWouldMissTheTightestDeadline) {
  BatchingOptions o = Options();
  o.max_queue_delay_us = 100'000;
  BatchQueue q(o, &latency_);
  Push(q, 1, 0, 0, 5000);  // a batch of 2 takes 1200 us: must start by 3800
  auto d = q.Poll(0, true, false);
  EXPECT_TRUE(d.batch.empty());
  EXPECT_EQ(d.wake_at_us, 3800);
  d = q.Poll(3800, true, false);
  ASSERT_EQ(d.batch.size(), 1u);
  EXPECT_EQ(d.reason, "deadline");
}

TEST_F(BatchQueueTest, DropsCancelledTasks) {
  BatchQueue q(Options(), &latency_);
  auto flag = std::make_shared<std::atomic<bool>>(false);
  auto t = MakeTask(1, &done_);
  t->cancelled = flag;
  ASSERT_TRUE(q.Push(t, 0).ok());
  EXPECT_TRUE(q.Poll(10, true, false).dropped.empty());
  flag->store(true);
  auto d = q.Poll(20, true, false);
  ASSERT_EQ(d.dropped.size(), 1u);
  EXPECT_EQ(d.dropped[0].status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(q.size(), 0);
}

TEST_F(BatchQueueTest, DefaultQueueTimeoutOnlyShortensDeadlines) {
  BatchingOptions o = Options();
  o.default_queue_timeout_us = 10'000;
  BatchQueue q(o, &latency_);
  Push(q, 1, 0, 0, 5'000);
  Push(q, 2, 0, 0, kNoDeadline);
  auto d = q.Poll(0, false, false);
  EXPECT_EQ(d.wake_at_us, 5'000 - 1100 + 1);
  d = q.Poll(9'000, false, false);  // both gone? task 1 expired; task 2 needs 1100 us by 10000
  ASSERT_EQ(d.dropped.size(), 2u);
}

TEST_F(BatchQueueTest, PreferredSizeGoesWhenTheNextOneIsNotCheaperPerImage) {
  BatchingOptions o = Options();
  o.max_batch_size = 8;
  o.preferred_batch_sizes = {2, 4};
  o.max_queue_delay_us = 100'000;
  // Per image: b=2 -> 600, b=4 -> 350: waiting for 4 helps; 4 is the largest preferred size.
  BatchQueue q(o, &latency_);
  Push(q, 1, 0);
  Push(q, 2, 0);
  EXPECT_TRUE(q.Poll(0, true, false).batch.empty());
  Push(q, 3, 0);
  Push(q, 4, 0);
  auto d = q.Poll(0, true, false);
  ASSERT_EQ(d.batch.size(), 4u);
  EXPECT_EQ(d.reason, "preferred_size");
}

TEST_F(BatchQueueTest, FlushSendsWhatIsQueuedAndTakeAllAnswersTheRest) {
  BatchQueue q(Options(), &latency_);
  for (int i = 1; i <= 6; ++i) Push(q, i, 0);
  auto d = q.Poll(0, true, /*flush=*/true);
  EXPECT_EQ(d.batch.size(), 4u);
  d = q.Poll(0, true, /*flush=*/true);
  EXPECT_EQ(d.batch.size(), 2u);
  EXPECT_EQ(d.reason, "draining");
  Push(q, 7, 0);
  auto rest = q.TakeAll(absl::UnavailableError("shutting down"));
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(q.size(), 0);
}

// Random arrivals, cancellations and deadlines through the queue with a simulated engine
// (one instance, service time from the latency model) on made-up time: every task ends exactly
// once, and none runs when it could no longer finish by its deadline.
TEST(BatchQueuePropertyTest, EveryTaskEndsOnceAndNeverRunsPastItsDeadline) {
  LinearLatency latency;
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    BatchingOptions o;
    o.max_batch_size = 1 + rng() % 8;
    o.max_queue_delay_us = rng() % 5000;
    o.max_queue_size = 64;
    o.priority_levels = 3;
    if (rng() % 2) o.preferred_batch_sizes = {std::min(2, o.max_batch_size), o.max_batch_size};
    BatchQueue q(o, &latency);
    struct Info {
      int ends = 0;
      int64_t deadline = kNoDeadline;
      std::shared_ptr<std::atomic<bool>> cancelled;
    };
    std::vector<Info> info(400);
    int64_t now = 0, busy_until = 0;
    std::vector<std::unique_ptr<BatchTask>> running;  // the batch on the one instance
    int next = 0, rejected = 0;
    while (next < 400 || q.size() > 0 || !running.empty()) {
      if (!running.empty() && now >= busy_until) {  // the running batch completes
        for (auto& t : running) t->done(absl::OkStatus(), {});
        running.clear();
      }
      if (next < 400 && rng() % 3 == 0) {  // an arrival
        const int id = next++;
        auto t = std::make_unique<BatchTask>();
        t->priority = rng() % 3;
        t->deadline_us = rng() % 4 ? now + 500 + rng() % 30000 : kNoDeadline;
        info[id].deadline = t->deadline_us;
        info[id].cancelled = std::make_shared<std::atomic<bool>>(false);
        t->cancelled = info[id].cancelled;
        t->done = [id, &info](const absl::Status&, const TaskTiming&) { ++info[id].ends; };
        if (!q.Push(t, now).ok()) {
          ++rejected;
          ++info[id].ends;  // answered UNAVAILABLE by the caller, who kept the task
        }
      }
      if (next > 0 && rng() % 10 == 0) info[rng() % next].cancelled->store(true);
      auto d = q.Poll(now, running.empty(), false);
      for (auto& x : d.dropped) x.task->done(x.status, {});
      if (!d.batch.empty()) {
        for (auto& t : d.batch) {
          // Only tasks that can still finish by their deadline are run.
          ASSERT_LE(now + latency.PredictMicros(1), t->deadline_us) << "seed " << seed;
        }
        busy_until = now + latency.PredictMicros(static_cast<int>(d.batch.size()));
        running = std::move(d.batch);
      }
      now += 1 + rng() % 700;
    }
    int total_ends = 0;
    for (int i = 0; i < 400; ++i) {
      ASSERT_EQ(info[i].ends, 1) << "seed " << seed << " task " << i;
      total_ends += info[i].ends;
    }
    EXPECT_EQ(total_ends, 400);
    EXPECT_LT(rejected, 400);
  }
}

TEST(BatchingOptionsTest, ValidateNamesTheBadField) {
  BatchingOptions o;
  o.preferred_batch_sizes = {64};
  const absl::Status s = o.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("preferred batch size 64"), std::string::npos);
  o = BatchingOptions();
  o.max_batch_size = 0;
  EXPECT_FALSE(o.Validate().ok());
  EXPECT_TRUE(BatchingOptions().Validate().ok());
}

}  // namespace
}  // namespace visionserve::batching
