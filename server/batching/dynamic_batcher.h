#pragma once

// One model's dynamic batcher: a BatchQueue, a scheduler thread that polls it, and `instances`
// worker threads that each run one batch at a time (a worker that finishes a batch takes the
// next due one itself; the scheduler handles arrivals, timers and drops). A batch's input is
// assembled as one pointer per task (no copy: the engine reads each image where its request left
// it); the outputs land in the instance's batch buffer and are scattered back to the tasks.
//
// Contract:
//  - Enqueue never blocks. On OK the batcher owns the task and calls its `done` exactly once;
//    on error (UNAVAILABLE when the queue is full or the batcher is stopping, INVALID_ARGUMENT
//    for a bad priority or tensor size) the task stays with the caller and `done` is not called.
//  - `done` runs on a batcher thread; it must not block for long.
//  - Stop() answers queued tasks with `status` or, when draining, runs them first, and
//    returns after every task's `done` has run.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/batching/batch_queue.h"
#include "server/batching/clock.h"

namespace visionserve::batching {

class DynamicBatcher {
 public:
  // Runs one batch: inputs[i] points to image i's input_floats values (the task's input), output
  // receives inputs.size() x output_floats. Called from one worker thread per instance,
  // concurrently across instances.
  using RunBatchFn =
      std::function<absl::Status(std::span<const float* const> inputs, std::span<float> output)>;
  // Called after every executed batch with its size and the measured compute time.
  using BatchObserver = std::function<void(int batch, int64_t compute_us)>;

  struct Options {
    BatchingOptions batching;
    int64_t input_floats = 0;   // per image
    int64_t output_floats = 0;  // per image
    RunBatchFn run;
    const LatencyModel* latency = nullptr;  // not owned; outlives the batcher
    BatchObserver on_batch;                 // optional
    const Clock* clock = SteadyClock::Get();
  };
  static absl::StatusOr<std::unique_ptr<DynamicBatcher>> Create(Options options);
  ~DynamicBatcher();  // Stop(UNAVAILABLE) if still running

  absl::Status Enqueue(std::unique_ptr<BatchTask>& task);
  // Re-polls the queue now (after a task's `cancelled` flag was set).
  void Wake();
  // Stops accepting tasks. drain: queued tasks still run (dispatched without waiting); otherwise
  // they are answered with `status`. Returns when every accepted task has been answered.
  void Stop(bool drain, const absl::Status& status = absl::UnavailableError("shutting down"));

  int queue_depth() const;
  int in_flight() const;  // batches being executed
  const BatchingOptions& options() const { return options_.batching; }

 private:
  struct Instance;
  explicit DynamicBatcher(Options options);
  // Polls the queue and hands every due batch to an idle instance (`self` first when it is
  // idle); dropped tasks are appended to `dropped` for the caller to answer outside the lock.
  // Returns when the queue wants to be polled again.
  int64_t DispatchLocked(Instance* self, std::vector<BatchQueue::Dropped>& dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SchedulerLoop();
  void InstanceLoop(Instance* instance);
  static void Answer(std::vector<BatchQueue::Dropped>& dropped, int64_t now_us);
  void Poke() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Options options_;
  mutable absl::Mutex mu_;
  BatchQueue queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool poke_ ABSL_GUARDED_BY(mu_) = false;  // something changed: poll again
  // The scheduler is blocked until scheduler_wake_at_ (kNoDeadline: until poked).
  bool scheduler_waiting_ ABSL_GUARDED_BY(mu_) = false;
  int64_t scheduler_wake_at_ ABSL_GUARDED_BY(mu_) = kNoDeadline;
  absl::CondVar scheduler_cv_;
  int idle_instances_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::thread scheduler_;
};

}  // namespace visionserve::batching
