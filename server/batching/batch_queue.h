#pragma once

// The dynamic batcher's decision logic, free of threads and clocks: a priority queue of tasks
// and one function, Poll(now), that says which tasks to drop, which batch to dispatch, and when
// to look again. DynamicBatcher (dynamic_batcher.h) wraps it with a mutex and worker threads;
// tests drive it directly with made-up times.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/batching/clock.h"

namespace visionserve::batching {

// Options of one model's queue. Units are in the names; defaults are what a model gets when its
// configuration leaves a field at 0.
struct BatchingOptions {
  int max_batch_size = 32;                 // largest batch dispatched
  int64_t max_queue_delay_us = 2000;       // the oldest request waits at most this long
  std::vector<int> preferred_batch_sizes;  // dispatch at these sizes when waiting won't help
  int max_queue_size = 1024;               // queued images; beyond it Enqueue says UNAVAILABLE
  int64_t default_queue_timeout_us = 0;    // 0: none; a request's own deadline may shorten it
  int instances = 1;                       // batches in flight at once
  int priority_levels = 1;                 // priorities 0 (first) .. levels-1

  // Checks ranges (sizes >= 1, preferred sizes within 1..max_batch_size, ...).
  absl::Status Validate() const;
};

// Predicted service time of one batch, in microseconds (from the engine's latency profile).
class LatencyModel {
 public:
  virtual ~LatencyModel() = default;
  virtual int64_t PredictMicros(int batch_size) const = 0;
};

struct TaskTiming {
  int64_t enqueue_us = 0;
  int64_t dispatch_us = 0;
  int64_t compute_start_us = 0;
  int64_t compute_end_us = 0;
  int batch_size = 0;
};

// One image's worth of work. The submitter keeps `input` and `output` alive until `done` runs
// (a batch reads `input` where it lies); `done` runs exactly once, on a batcher thread, with OK
// (output filled) or the reason it was not run (DEADLINE_EXCEEDED, CANCELLED, UNAVAILABLE when shut
// down, or the engine's error).
struct BatchTask {
  int priority = 0;
  int64_t deadline_us = kNoDeadline;  // absolute, on the batcher's clock
  std::span<const float> input;       // exactly the model's per-image input size
  std::span<float> output;            // exactly the model's per-image output size
  // Set by the submitter when the client goes away; checked at every poll (call Wake()).
  std::shared_ptr<const std::atomic<bool>> cancelled;
  std::function<void(const absl::Status&, const TaskTiming&)> done;

  // Filled by the queue.
  int64_t enqueue_us = 0;
};

class BatchQueue {
 public:
  BatchQueue(const BatchingOptions& options, const LatencyModel* latency);

  // Takes the task when OK. A full queue is UNAVAILABLE (retryable), a priority out of range is
  // INVALID_ARGUMENT; on error `task` is left with the caller.
  absl::Status Push(std::unique_ptr<BatchTask>& task, int64_t now_us);

  struct Dropped {
    std::unique_ptr<BatchTask> task;
    absl::Status status;
  };
  struct Decision {
    std::vector<std::unique_ptr<BatchTask>> batch;  // empty: nothing to dispatch now
    std::vector<Dropped> dropped;                   // to be answered with their status
    int64_t wake_at_us = kNoDeadline;               // poll again no later than this
    std::string reason;                             // why the batch went (for tests and logs)
  };
  // Drops cancelled tasks and tasks that can no longer finish by their deadline, then, if
  // `can_dispatch`, decides whether a batch should go now: when it is full, when it reached a
  // preferred size and the next preferred size would not be cheaper per image, when the oldest
  // task has waited max_queue_delay_us, when waiting for one more task would make the tightest
  // deadline miss, or always when `flush` (draining). Highest priority first, FIFO within a
  // priority.
  Decision Poll(int64_t now_us, bool can_dispatch, bool flush);

  // Removes every task (shutdown): they are answered with `status`.
  std::vector<Dropped> TakeAll(const absl::Status& status);

  int size() const { return size_; }
  // When a queued task is due to be dropped for its deadline if it is still waiting then (its
  // deadline less the predicted time of a batch of one), or kNoDeadline.
  int64_t DropDueUs(const BatchTask& task) const;
  const BatchingOptions& options() const { return options_; }

 private:
  int64_t Predict(int batch) const;
  bool PreferredSizeReached(int n) const;

  BatchingOptions options_;
  const LatencyModel* latency_;
  std::vector<std::deque<std::unique_ptr<BatchTask>>> levels_;
  int size_ = 0;
};

}  // namespace visionserve::batching
