#include "server/batching/batch_queue.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace visionserve::batching {

absl::Status BatchingOptions::Validate() const {
  if (max_batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch_size must be >= 1, got ", max_batch_size));
  }
  if (max_queue_delay_us < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_delay_us must be >= 0, got ", max_queue_delay_us));
  }
  for (int p : preferred_batch_sizes) {
    if (p < 1 || p > max_batch_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "preferred batch size ", p, " is outside 1..max_batch_size (", max_batch_size, ")"));
    }
  }
  if (max_queue_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_size must be >= 1, got ", max_queue_size));
  }
  if (default_queue_timeout_us < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("default_queue_timeout_us must be >= 0, got ", default_queue_timeout_us));
  }
  if (instances < 1 || instances > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("instances must be within 1..64, got ", instances));
  }
  if (priority_levels < 1 || priority_levels > 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority_levels must be within 1..16, got ", priority_levels));
  }
  return absl::OkStatus();
}

BatchQueue::BatchQueue(const BatchingOptions& options, const LatencyModel* latency)
    : options_(options), latency_(latency), levels_(std::max(1, options.priority_levels)) {
  std::sort(options_.preferred_batch_sizes.begin(), options_.preferred_batch_sizes.end());
}

int64_t BatchQueue::Predict(int batch) const {
  return latency_ ? std::max<int64_t>(0, latency_->PredictMicros(batch)) : 0;
}

absl::Status BatchQueue::Push(std::unique_ptr<BatchTask>& task, int64_t now_us) {
  if (task->priority < 0 || task->priority >= static_cast<int>(levels_.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority ", task->priority, " is outside 0..", levels_.size() - 1));
  }
  if (size_ >= options_.max_queue_size) {
    return absl::UnavailableError(
        absl::StrCat("queue full (", options_.max_queue_size, " images waiting); retry later"));
  }
  task->enqueue_us = now_us;
  if (options_.default_queue_timeout_us > 0) {
    task->deadline_us = std::min(task->deadline_us, now_us + options_.default_queue_timeout_us);
  }
  levels_[task->priority].push_back(std::move(task));
  ++size_;
  return absl::OkStatus();
}

bool BatchQueue::PreferredSizeReached(int n) const {
  const auto& pref = options_.preferred_batch_sizes;
  auto it = std::find(pref.begin(), pref.end(), n);
  if (it == pref.end()) return false;
  if (++it == pref.end()) return true;  // the largest preferred size
  // Waiting for the next preferred size only helps if it is cheaper per image.
  const int next = *it;
  const double here = static_cast<double>(Predict(n)) / n;
  const double there = static_cast<double>(Predict(next)) / next;
  return there > 0.95 * here;
}

int64_t BatchQueue::DropDueUs(const BatchTask& task) const {
  return task.deadline_us == kNoDeadline ? kNoDeadline : task.deadline_us - Predict(1) + 1;
}

BatchQueue::Decision BatchQueue::Poll(int64_t now_us, bool can_dispatch, bool flush) {
  Decision d;
  // 1. Drop what was cancelled or can no longer make its deadline even alone in a batch.
  const int64_t single = Predict(1);
  int64_t oldest_enqueue = kNoDeadline, tightest_deadline = kNoDeadline;
  for (auto& level : levels_) {
    for (auto it = level.begin(); it != level.end();) {
      BatchTask& t = **it;
      absl::Status drop;
      if (t.cancelled && t.cancelled->load(std::memory_order_acquire)) {
        drop = absl::CancelledError("request cancelled by the client");
      } else if (t.deadline_us != kNoDeadline && now_us + single > t.deadline_us) {
        drop = absl::DeadlineExceededError(
            now_us >= t.deadline_us
                ? absl::StrCat("deadline passed while queued (waited ", now_us - t.enqueue_us,
                               " us)")
                : absl::StrCat("cannot finish in time: ", t.deadline_us - now_us,
                               " us left, a batch takes at least ", single, " us"));
      }
      if (!drop.ok()) {
        d.dropped.push_back({std::move(*it), std::move(drop)});
        it = level.erase(it);
        --size_;
        continue;
      }
      oldest_enqueue = std::min(oldest_enqueue, t.enqueue_us);
      tightest_deadline = std::min(tightest_deadline, t.deadline_us);
      d.wake_at_us = std::min(d.wake_at_us, DropDueUs(t));
      ++it;
    }
  }
  if (size_ == 0 || !can_dispatch) return d;

  // 2. Should a batch of n go now?
  const int n = std::min(size_, options_.max_batch_size);
  const int64_t delay_due = oldest_enqueue + options_.max_queue_delay_us;
  // Latest moment to start a batch of one more task and still meet the tightest deadline.
  const int64_t slack_due =
      tightest_deadline == kNoDeadline
          ? kNoDeadline
          : tightest_deadline - Predict(std::min(n + 1, options_.max_batch_size));
  if (flush) {
    d.reason = "draining";
  } else if (n == options_.max_batch_size) {
    d.reason = "full";
  } else if (now_us >= delay_due) {
    d.reason = "max_queue_delay";
  } else if (now_us >= slack_due) {
    d.reason = "deadline";
  } else if (PreferredSizeReached(n)) {
    d.reason = "preferred_size";
  } else {
    d.wake_at_us = std::min({d.wake_at_us, delay_due, slack_due});
    return d;
  }
  d.batch.reserve(n);
  for (auto& level : levels_) {
    while (!level.empty() && static_cast<int>(d.batch.size()) < n) {
      d.batch.push_back(std::move(level.front()));
      level.pop_front();
    }
  }
  size_ -= n;
  return d;
}

std::vector<BatchQueue::Dropped> BatchQueue::TakeAll(const absl::Status& status) {
  std::vector<Dropped> out;
  for (auto& level : levels_) {
    for (auto& t : level) out.push_back({std::move(t), status});
    level.clear();
  }
  size_ = 0;
  return out;
}

}  // namespace visionserve::batching
