#include "server/batching/dynamic_batcher.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace visionserve::batching {

// A worker with its own batch buffers. Fields below `thread` are guarded by the batcher's mu_.
struct DynamicBatcher::Instance {
  std::vector<const float*> inputs;  // the batch's task inputs, in place
  std::vector<float> output;
  std::thread thread;
  absl::CondVar cv;                               // signalled on a new batch or exit
  std::vector<std::unique_ptr<BatchTask>> batch;  // handed over by DispatchLocked
  std::vector<BatchQueue::Dropped> dropped;       // dropped by this worker's own dispatch
  int64_t dispatch_us = 0;
  bool busy = false;
  bool exit = false;
};

absl::StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(Options options) {
  if (absl::Status s = options.batching.Validate(); !s.ok()) return s;
  if (options.input_floats < 1 || options.output_floats < 1 || !options.run) {
    return absl::InvalidArgumentError("batcher needs input/output sizes and a run function");
  }
  std::unique_ptr<DynamicBatcher> b(new DynamicBatcher(std::move(options)));
  const int n = b->options_.batching.instances;
  const size_t max_batch = static_cast<size_t>(b->options_.batching.max_batch_size);
  {
    absl::MutexLock lock(&b->mu_);
    b->idle_instances_ = n;
  }
  for (int i = 0; i < n; ++i) {
    auto inst = std::make_unique<Instance>();
    inst->inputs.reserve(max_batch);
    inst->output.resize(max_batch * b->options_.output_floats);
    b->instances_.push_back(std::move(inst));
  }
  for (auto& inst : b->instances_) {
    Instance* p = inst.get();
    p->thread = std::thread([b = b.get(), p] { b->InstanceLoop(p); });
    pthread_setname_np(p->thread.native_handle(), "vs-batch-run");  // for top -H and profiles
  }
  b->scheduler_ = std::thread([b = b.get()] { b->SchedulerLoop(); });
  pthread_setname_np(b->scheduler_.native_handle(), "vs-batch-sched");
  return b;
}

DynamicBatcher::DynamicBatcher(Options options)
    : options_(std::move(options)), queue_(options_.batching, options_.latency) {}

DynamicBatcher::~DynamicBatcher() { Stop(/*drain=*/false); }

absl::Status DynamicBatcher::Enqueue(std::unique_ptr<BatchTask>& task) {
  if (static_cast<int64_t>(task->input.size()) != options_.input_floats ||
      static_cast<int64_t>(task->output.size()) != options_.output_floats) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task tensors have ", task->input.size(), " / ", task->output.size(),
        " floats, the model needs ", options_.input_floats, " / ", options_.output_floats));
  }
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("shutting down");
  const BatchTask* queued = task.get();
  if (absl::Status s = queue_.Push(task, options_.clock->NowMicros()); !s.ok()) return s;
  // While every instance is busy, a new task changes nothing the scheduler could act on unless
  // it must be dropped before the scheduler's next wake-up; the end of a running batch wakes
  // the scheduler anyway. Not waking it for every request saves a thread switch per request on
  // cores the engine is using.
  if (idle_instances_ > 0 || !scheduler_waiting_ ||
      queue_.DropDueUs(*queued) < scheduler_wake_at_) {
    Poke();
  }
  return absl::OkStatus();
}

void DynamicBatcher::Poke() {
  poke_ = true;
  scheduler_cv_.Signal();
}

void DynamicBatcher::Wake() {
  absl::MutexLock lock(&mu_);
  Poke();
}

int DynamicBatcher::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

int DynamicBatcher::in_flight() const {
  absl::MutexLock lock(&mu_);
  return options_.batching.instances - idle_instances_;
}

void DynamicBatcher::Answer(std::vector<BatchQueue::Dropped>& dropped, int64_t now_us) {
  for (auto& d : dropped) {
    TaskTiming t;
    t.enqueue_us = d.task->enqueue_us;
    t.dispatch_us = now_us;
    d.task->done(d.status, t);
  }
  dropped.clear();
}

int64_t DynamicBatcher::DispatchLocked(Instance* self, std::vector<BatchQueue::Dropped>& dropped) {
  for (;;) {
    const int64_t now = options_.clock->NowMicros();
    // Once stopping, whatever is still queued (only when draining) goes without waiting.
    BatchQueue::Decision d = queue_.Poll(now, idle_instances_ > 0, stopping_);
    for (auto& x : d.dropped) dropped.push_back(std::move(x));
    if (d.batch.empty()) return d.wake_at_us;
    Instance* target = self != nullptr && !self->busy ? self : nullptr;
    for (size_t i = 0; target == nullptr && i < instances_.size(); ++i) {
      if (!instances_[i]->busy) target = instances_[i].get();
    }
    target->busy = true;
    target->batch = std::move(d.batch);
    target->dispatch_us = now;
    --idle_instances_;
    if (target != self) target->cv.Signal();
  }
}

void DynamicBatcher::SchedulerLoop() {
  std::vector<BatchQueue::Dropped> dropped;
  for (;;) {
    int64_t wake_at = kNoDeadline;
    {
      absl::MutexLock lock(&mu_);
      wake_at = DispatchLocked(nullptr, dropped);
      if (stopping_ && queue_.size() == 0 && dropped.empty() &&
          idle_instances_ == options_.batching.instances) {
        for (auto& inst : instances_) {
          inst->exit = true;
          inst->cv.Signal();
        }
        stopped_ = true;
        return;
      }
      if (dropped.empty()) {
        // Sleep until a new task, a free instance, a cancellation or the next due time.
        if (!poke_) {
          scheduler_waiting_ = true;
          scheduler_wake_at_ = wake_at;
          if (wake_at == kNoDeadline) {
            scheduler_cv_.Wait(&mu_);
          } else if (const int64_t wait_us = wake_at - options_.clock->NowMicros(); wait_us > 0) {
            scheduler_cv_.WaitWithTimeout(&mu_, absl::Microseconds(wait_us));
          }
          scheduler_waiting_ = false;
        }
        poke_ = false;
        continue;
      }
      poke_ = false;
    }
    Answer(dropped, options_.clock->NowMicros());
  }
}

void DynamicBatcher::InstanceLoop(Instance* inst) {
  const size_t out_n = static_cast<size_t>(options_.output_floats);
  for (;;) {
    std::vector<std::unique_ptr<BatchTask>> batch;
    int64_t dispatch_us = 0;
    {
      absl::MutexLock lock(&mu_);
      while (inst->batch.empty() && !inst->exit) inst->cv.Wait(&mu_);
      if (inst->batch.empty()) return;  // exit
      batch = std::move(inst->batch);
      inst->batch.clear();
      dispatch_us = inst->dispatch_us;
    }
    const int n = static_cast<int>(batch.size());
    inst->inputs.clear();
    for (int i = 0; i < n; ++i) inst->inputs.push_back(batch[i]->input.data());
    const int64_t start = options_.clock->NowMicros();
    const absl::Status s =
        options_.run(inst->inputs, std::span<float>(inst->output.data(), n * out_n));
    const int64_t end = options_.clock->NowMicros();
    if (s.ok() && options_.on_batch) options_.on_batch(n, end - start);
    for (int i = 0; i < n; ++i) {
      BatchTask& t = *batch[i];
      if (s.ok()) {
        std::memcpy(t.output.data(), inst->output.data() + i * out_n, out_n * sizeof(float));
      }
      TaskTiming timing{t.enqueue_us, dispatch_us, start, end, n};
      t.done(s, timing);
    }
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      inst->busy = false;
      ++idle_instances_;
      // Take the next due batch here rather than through the scheduler thread: two thread
      // hand-offs fewer between batches. The scheduler only needs to look again when it is
      // awake, shutting down, or due later than what the queue now wants.
      const int64_t wake_at = DispatchLocked(inst, inst->dropped);
      if (stopping_ || !scheduler_waiting_ || wake_at < scheduler_wake_at_) Poke();
    }
    Answer(inst->dropped, options_.clock->NowMicros());
  }
}

void DynamicBatcher::Stop(bool drain, const absl::Status& status) {
  std::vector<BatchQueue::Dropped> dropped;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ && !scheduler_.joinable()) return;
    if (!stopping_) {
      stopping_ = true;
      draining_ = drain;
      if (!drain) dropped = queue_.TakeAll(status);
    }
    Poke();
  }
  Answer(dropped, options_.clock->NowMicros());
  if (scheduler_.joinable()) scheduler_.join();
  for (auto& inst : instances_) {
    if (inst->thread.joinable()) inst->thread.join();
  }
}

}  // namespace visionserve::batching
