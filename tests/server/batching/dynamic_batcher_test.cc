#include "server/batching/dynamic_batcher.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace visionserve::batching {
namespace {

constexpr int kIn = 3, kOut = 2;

// output[0] = sum(input), output[1] = batch size it ran in.
absl::Status SumRun(std::span<const float* const> in, std::span<float> out) {
  const int batch = static_cast<int>(in.size());
  for (int i = 0; i < batch; ++i) {
    out[i * kOut] = in[i][0] + in[i][1] + in[i][2];
    out[i * kOut + 1] = static_cast<float>(batch);
  }
  return absl::OkStatus();
}

struct Job {
  std::vector<float> in = std::vector<float>(kIn), out = std::vector<float>(kOut, -1);
  std::atomic<int> calls{0};
  absl::Status status;
  TaskTiming timing;
};

std::unique_ptr<BatchTask> TaskFor(Job& job) {
  auto t = std::make_unique<BatchTask>();
  t->input = job.in;
  t->output = job.out;
  t->done = [&job](const absl::Status& s, const TaskTiming& timing) {
    job.status = s;
    job.timing = timing;
    job.calls.fetch_add(1);
  };
  return t;
}

// Polls `done` every millisecond for up to 10 s; the caller's expectations then fail on a hang.
template <typename Done>
void WaitUntil(Done done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

DynamicBatcher::Options MakeOptions(DynamicBatcher::RunBatchFn run = SumRun) {
  DynamicBatcher::Options o;
  o.batching.max_batch_size = 8;
  o.batching.max_queue_delay_us = 500;
  o.batching.instances = 2;
  o.batching.max_queue_size = 4096;
  o.input_floats = kIn;
  o.output_floats = kOut;
  o.run = std::move(run);
  return o;
}

// One instance whose runs wait until `release` is notified (and count themselves in `runs`).
DynamicBatcher::Options OneBlockedInstance(absl::Notification& release, int max_batch_size = 1,
                                           std::atomic<int>* runs = nullptr) {
  auto opts = MakeOptions([&release, runs](std::span<const float* const> in, std::span<float> out) {
    if (runs != nullptr) runs->fetch_add(1);
    release.WaitForNotification();
    return SumRun(in, out);
  });
  opts.batching.instances = 1;
  opts.batching.max_batch_size = max_batch_size;
  return opts;
}

TEST(DynamicBatcherTest, EveryTaskIsAnsweredOnceWithItsOwnResult) {
  std::atomic<int> batches{0};
  auto opts = MakeOptions();
  opts.on_batch = [&](int, int64_t) { batches.fetch_add(1); };
  auto b = DynamicBatcher::Create(opts);
  ASSERT_TRUE(b.ok()) << b.status();
  constexpr int kThreads = 4, kPerThread = 200;
  std::vector<Job> jobs(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Job& j = jobs[t * kPerThread + i];
        j.in = {float(t), float(i), 1.0f};
        auto task = TaskFor(j);
        ASSERT_TRUE((*b)->Enqueue(task).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  (*b)->Stop(/*drain=*/true);
  int max_batch = 0;
  for (size_t k = 0; k < jobs.size(); ++k) {
    const Job& j = jobs[k];
    ASSERT_EQ(j.calls.load(), 1) << k;
    ASSERT_TRUE(j.status.ok()) << j.status;
    EXPECT_EQ(j.out[0], j.in[0] + j.in[1] + j.in[2]);
    EXPECT_EQ(j.out[1], j.timing.batch_size);
    EXPECT_LE(j.timing.enqueue_us, j.timing.dispatch_us);
    EXPECT_LE(j.timing.compute_start_us, j.timing.compute_end_us);
    max_batch = std::max(max_batch, j.timing.batch_size);
  }
  EXPECT_LE(max_batch, 8);
  EXPECT_GT(max_batch, 1);  // 800 tasks from 4 threads do get batched together
  EXPECT_LT(batches.load(), 800);
}

TEST(DynamicBatcherTest, EngineErrorsReachEveryTaskOfTheBatch) {
  auto b = DynamicBatcher::Create(MakeOptions(
      [](std::span<const float* const>, std::span<float>) { return absl::InternalError("boom"); }));
  ASSERT_TRUE(b.ok());
  std::vector<Job> jobs(5);
  for (auto& j : jobs) {
    auto t = TaskFor(j);
    ASSERT_TRUE((*b)->Enqueue(t).ok());
  }
  (*b)->Stop(true);
  for (auto& j : jobs) {
    EXPECT_EQ(j.calls.load(), 1);
    EXPECT_EQ(j.status.code(), absl::StatusCode::kInternal);
  }
}

TEST(DynamicBatcherTest, StopWithoutDrainAnswersQueuedTasksAndRefusesNewOnes) {
  absl::Notification release;
  std::atomic<int> runs{0};
  auto b = DynamicBatcher::Create(OneBlockedInstance(release, 1, &runs));
  ASSERT_TRUE(b.ok());
  std::vector<Job> jobs(4);
  for (auto& j : jobs) {
    auto t = TaskFor(j);
    ASSERT_TRUE((*b)->Enqueue(t).ok());
  }
  std::thread stopper([&] { (*b)->Stop(/*drain=*/false); });
  // The one running batch finishes; the queued ones are answered UNAVAILABLE.
  while ((*b)->queue_depth() > 0) std::this_thread::yield();
  Job late;
  auto t = TaskFor(late);
  EXPECT_EQ((*b)->Enqueue(t).code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(t, nullptr);
  release.Notify();
  stopper.join();
  int ok = 0, unavailable = 0;
  for (auto& j : jobs) {
    EXPECT_EQ(j.calls.load(), 1);
    ok += j.status.ok();
    unavailable += j.status.code() == absl::StatusCode::kUnavailable;
  }
  EXPECT_EQ(ok, runs.load());
  EXPECT_EQ(ok + unavailable, 4);
  EXPECT_GE(unavailable, 2);
  EXPECT_EQ(late.calls.load(), 0);
}

TEST(DynamicBatcherTest, CancelledTasksLeaveTheQueue) {
  absl::Notification release;
  auto b = DynamicBatcher::Create(OneBlockedInstance(release));
  ASSERT_TRUE(b.ok());
  Job first, second;
  auto flag = std::make_shared<std::atomic<bool>>(false);
  auto t1 = TaskFor(first);
  ASSERT_TRUE((*b)->Enqueue(t1).ok());
  while ((*b)->in_flight() == 0) std::this_thread::yield();
  auto t2 = TaskFor(second);
  t2->cancelled = flag;
  ASSERT_TRUE((*b)->Enqueue(t2).ok());
  flag->store(true);
  (*b)->Wake();
  while (second.calls.load() == 0) std::this_thread::yield();
  EXPECT_EQ(second.status.code(), absl::StatusCode::kCancelled);
  release.Notify();
  (*b)->Stop(true);
  EXPECT_TRUE(first.status.ok());
  EXPECT_EQ(first.calls.load(), 1);
}

// While the only instance is busy, new tasks do not wake the scheduler, except one that must
// be dropped before the scheduler's next wake-up: it is answered DEADLINE_EXCEEDED on time,
// not when the running batch ends.
TEST(DynamicBatcherTest, DeadlineDropsWhileEveryInstanceIsBusy) {
  absl::Notification release;
  auto b = DynamicBatcher::Create(OneBlockedInstance(release));
  ASSERT_TRUE(b.ok());
  Job running, waiting, doomed;
  auto t1 = TaskFor(running);
  ASSERT_TRUE((*b)->Enqueue(t1).ok());
  while ((*b)->in_flight() == 0) std::this_thread::yield();
  auto t2 = TaskFor(waiting);  // no deadline: waits for the instance
  ASSERT_TRUE((*b)->Enqueue(t2).ok());
  auto t3 = TaskFor(doomed);
  t3->deadline_us = SteadyClock::Get()->NowMicros() + 20'000;
  ASSERT_TRUE((*b)->Enqueue(t3).ok());
  WaitUntil([&] { return doomed.calls.load() != 0; });
  EXPECT_EQ(doomed.calls.load(), 1);
  EXPECT_EQ(doomed.status.code(), absl::StatusCode::kDeadlineExceeded) << doomed.status;
  EXPECT_EQ(running.calls.load(), 0);  // the batch is still running
  EXPECT_EQ(waiting.calls.load(), 0);
  release.Notify();
  (*b)->Stop(true);
  EXPECT_TRUE(running.status.ok());
  EXPECT_TRUE(waiting.status.ok());
  EXPECT_EQ(waiting.calls.load(), 1);
}

// A worker that finishes a batch takes the next due one itself; a task that is not due yet is
// left to the scheduler, which must still send it when its max_queue_delay_us has passed.
TEST(DynamicBatcherTest, ATaskNotYetDueWhenABatchEndsGoesAtItsQueueDelay) {
  absl::Notification release;
  auto opts = OneBlockedInstance(release, /*max_batch_size=*/4);  // later runs pass: released
  opts.batching.max_queue_delay_us = 50'000;
  auto b = DynamicBatcher::Create(opts);
  ASSERT_TRUE(b.ok());
  std::vector<Job> first(4);
  for (auto& j : first) {
    auto t = TaskFor(j);
    ASSERT_TRUE((*b)->Enqueue(t).ok());  // a full batch: goes at once
  }
  while ((*b)->in_flight() == 0) std::this_thread::yield();
  Job late;
  auto t = TaskFor(late);
  ASSERT_TRUE((*b)->Enqueue(t).ok());
  release.Notify();
  WaitUntil([&] { return late.calls.load() != 0; });
  ASSERT_EQ(late.calls.load(), 1);
  EXPECT_TRUE(late.status.ok()) << late.status;
  EXPECT_EQ(late.timing.batch_size, 1);
  EXPECT_GE(late.timing.dispatch_us - late.timing.enqueue_us, 50'000);
  for (auto& j : first) EXPECT_EQ(j.timing.batch_size, 4);
  (*b)->Stop(true);
}

// Back-to-back full batches are taken by the finishing worker and all complete.
TEST(DynamicBatcherTest, QueuedFullBatchesRunBackToBack) {
  std::atomic<int> batches{0};
  auto opts = MakeOptions();
  opts.batching.instances = 1;
  opts.batching.max_batch_size = 4;
  opts.batching.max_queue_delay_us = 10'000'000;  // only full batches go before Stop
  opts.on_batch = [&](int n, int64_t) {
    EXPECT_EQ(n, 4);
    batches.fetch_add(1);
  };
  auto b = DynamicBatcher::Create(opts);
  ASSERT_TRUE(b.ok());
  std::vector<Job> jobs(40);
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].in = {float(i), 1.f, 2.f};
    auto t = TaskFor(jobs[i]);
    ASSERT_TRUE((*b)->Enqueue(t).ok());
  }
  WaitUntil([&] { return batches.load() >= 10; });
  EXPECT_EQ(batches.load(), 10);
  (*b)->Stop(true);
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(jobs[i].calls.load(), 1);
    EXPECT_EQ(jobs[i].out[0], float(i) + 3.f);
  }
}

TEST(DynamicBatcherTest, RejectsTensorsOfTheWrongSize) {
  auto b = DynamicBatcher::Create(MakeOptions());
  ASSERT_TRUE(b.ok());
  Job j;
  j.in.resize(5);
  auto t = TaskFor(j);
  EXPECT_EQ((*b)->Enqueue(t).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t, nullptr);
}

}  // namespace
}  // namespace visionserve::batching
