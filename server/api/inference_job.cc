#include "server/api/inference_job.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/batching/clock.h"
#include "server/policy/router.h"

namespace visionserve::api {

using batching::SteadyClock;

absl::Status CheckRgbTensor(const v1::RawTensor& t, const preprocess::Limits& limits) {
  if (t.shape_size() != 3 || t.shape(2) != 3) {
    return absl::InvalidArgumentError(
        "a UINT8 tensor must have shape [height, width, 3] (HWC RGB)");
  }
  if (t.shape(0) < 1 || t.shape(1) < 1 || t.shape(0) > limits.max_side ||
      t.shape(1) > limits.max_side) {
    return absl::InvalidArgumentError(absl::StrCat("tensor dimensions ", t.shape(0), "x",
                                                   t.shape(1), " are out of range 1..",
                                                   limits.max_side));
  }
  return absl::OkStatus();
}

InferenceJob::InferenceJob(metrics::Rpc rpc, repository::ModelTask task, const RequestView& request,
                           int64_t deadline_us, std::shared_ptr<std::atomic<bool>> cancelled,
                           engine::ThreadPool* pool, const JobOptions& options)
    : request_(request),
      options_(options),
      arrival_us_(SteadyClock::Get()->NowMicros()),
      rpc_(rpc),
      task_(task),
      deadline_us_(deadline_us),
      cancelled_(std::move(cancelled)),
      pool_(pool) {}

InferenceJob::~InferenceJob() = default;

void InferenceJob::Begin(const repository::ModelRepository* models) {
  const char* kind = task_ == repository::ModelTask::kDetect ? "detection" : "classification";
  const char* rpc_name = task_ == repository::ModelTask::kDetect ? "Detect" : "Classify";
  // Which model: by name, by policy, or the server's default (a default policy or model).
  repository::ServedModel* model = nullptr;
  const repository::PolicyTable& policies = models->policies();
  const policy::Policy* chosen_policy = nullptr;
  policy::Policy inline_policy;
  switch (request_.target) {
    case RequestView::Target::kModel: {
      auto m = models->Find(*request_.model);
      if (!m.ok()) return Fail(m.status());
      if ((*m)->spec().task != task_) {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "model ", (*m)->spec().name, " is a ", repository::ModelTaskName((*m)->spec().task),
            " model; ", rpc_name, " needs a ", kind, " model")));
      }
      model = *m;
      reason_ = "requested by name";
      break;
    }
    case RequestView::Target::kPolicy:
      chosen_policy = policies.Find(*request_.policy);
      if (!chosen_policy) {
        std::string names;
        for (const auto& p : policies.policies)
          absl::StrAppend(&names, names.empty() ? "" : ", ", p.name);
        return Fail(absl::NotFoundError(
            absl::StrCat("no policy named \"", *request_.policy, "\"; configured: ", names)));
      }
      break;
    case RequestView::Target::kInlinePolicy: {
      const v1::InlinePolicy& ip = *request_.inline_policy;
      v1::PolicyConfig pc;
      pc.set_name("inline");
      pc.set_latency_budget_ms(ip.latency_budget_ms());
      pc.set_min_top1(ip.min_top1());
      pc.set_objective(static_cast<v1::PolicyConfig::Objective>(ip.objective()));
      pc.set_on_miss(static_cast<v1::PolicyConfig::OnMiss>(ip.on_miss()));
      *pc.mutable_families() = ip.families();
      auto p = repository::ToPolicy(pc);
      if (!p.ok()) return Fail(p.status());
      inline_policy = std::move(*p);
      chosen_policy = &inline_policy;
      break;
    }
    case RequestView::Target::kNone:
      // A default policy routes only Classify: it was written for classifiers.
      if (!policies.default_policy.empty() && task_ == repository::ModelTask::kClassify) {
        chosen_policy = policies.Find(policies.default_policy);
      } else {
        model = models->default_model(task_);
        if (model == nullptr) {
          return Fail(absl::FailedPreconditionError(
              absl::StrCat("no ", kind, " model is configured; ", rpc_name, " needs one")));
        }
        reason_ = "default model";
      }
      break;
  }
  if (chosen_policy) {
    std::vector<policy::Candidate> candidates;
    std::vector<repository::ServedModel*> served;
    for (const auto& m : models->models()) {
      if (m->spec().task != task_ || m->state() != repository::ModelState::kReady) continue;
      policy::Candidate c;
      c.name = m->spec().name;
      c.family = m->spec().family;
      c.top1 = m->spec().top1;
      c.latency = &m->profile();
      c.max_batch_size = m->spec().batching.max_batch_size;
      c.instances = m->spec().batching.instances;
      c.queue_depth = m->batcher()->queue_depth();
      c.in_flight = m->batcher()->in_flight();
      candidates.push_back(std::move(c));
      served.push_back(m.get());
    }
    if (candidates.empty()) {
      return Fail(absl::UnavailableError(absl::StrCat("no ", kind, " model is READY")));
    }
    auto decision = policy::Choose(*chosen_policy, candidates, arrival_us_, deadline_us_);
    if (!decision.ok()) return Fail(decision.status());
    model = served[decision->index];
    reason_ = decision->reason;
    policy_index_ = chosen_policy == &inline_policy
                        ? static_cast<int>(policies.policies.size())
                        : static_cast<int>(chosen_policy - policies.policies.data());
    // A policy that rejects misses puts its budget on the tasks: the batcher drops what can no
    // longer make it. One that serves the fastest anyway keeps only the call's deadline.
    if (chosen_policy->on_miss == policy::OnMiss::kReject && chosen_policy->latency_budget_ms > 0) {
      deadline_us_ =
          std::min(deadline_us_,
                   arrival_us_ + static_cast<int64_t>(chosen_policy->latency_budget_ms * 1000));
    }
  }
  // Validate.
  const int num_images = request_.images->size();
  if (num_images == 0) return Fail(absl::InvalidArgumentError("request has no images"));
  if (num_images > options_.max_images_per_request) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat("request has ", num_images, " images; at most ",
                                                options_.max_images_per_request, " are allowed")));
  }
  model_ = model;  // from here on failures count on the model's metrics
  if (absl::Status s = ValidateFor(*model); !s.ok()) return Fail(s);
  const int levels = model->spec().batching.priority_levels;
  if (request_.priority < 0 || request_.priority >= levels) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat("priority ", request_.priority, " is outside 0..",
                                                levels - 1, " for model ", model->spec().name)));
  }
  if (model->state() != repository::ModelState::kReady) {
    return Fail(absl::UnavailableError(absl::StrCat(
        "model ", model->spec().name, " is ", repository::ModelStateName(model->state()),
        ", not READY", model->state_reason().empty() ? "" : ": ", model->state_reason())));
  }
  if (deadline_us_ != batching::kNoDeadline && arrival_us_ >= deadline_us_) {
    return Fail(absl::DeadlineExceededError("deadline passed before the request started"));
  }
  num_items_ = num_images;
  items_ = std::make_unique<Item[]>(num_items_);
  remaining_.store(num_items_);
  for (int i = 0; i < num_items_; ++i) items_[i].output.resize(model->output_floats());
  // Decode and preprocess on the engine's arena, never on gRPC's threads; images in parallel.
  preprocessing_.store(num_items_);
  std::shared_ptr<InferenceJob> self = shared_from_this();
  for (int i = 0; i < num_items_; ++i) {
    pool_->arena().enqueue([self, i] { self->Preprocess(i); });
  }
}

void InferenceJob::Preprocess(int index) {
  struct Done {  // this call no longer reads the request; a pending failure may be answered
    InferenceJob* job;
    ~Done() {
      job->preprocessing_.fetch_sub(1);
      job->TryAnswerFailure();
    }
  } done{this};
  if (completed_.load(std::memory_order_acquire)) return;  // an earlier image failed
  Item& item = items_[index];
  const int64_t t0 = SteadyClock::Get()->NowMicros();
  absl::StatusOr<std::span<const float>> input = InputInPlace(index);
  absl::Status s = input.status();
  if (s.ok() && input->empty()) {
    item.input.resize(model_->input_floats());
    s = PreprocessImage(index, item.input);
    input = std::span<const float>(item.input);
  }
  item.preprocess_us = SteadyClock::Get()->NowMicros() - t0;
  if (!s.ok()) {
    return Fail(num_items_ > 1
                    ? absl::Status(s.code(), absl::StrCat("image ", index, ": ", s.message()))
                    : s);
  }
  // A task reading the request in place keeps a failure from being answered (the caller then
  // frees the request) until the batcher is done with it.
  const bool borrows = input->data() != item.input.data();
  auto task = std::make_unique<batching::BatchTask>();
  task->priority = request_.priority;
  task->deadline_us = deadline_us_;
  task->input = *input;
  task->output = item.output;
  task->cancelled = cancelled_;
  std::shared_ptr<InferenceJob> self = shared_from_this();
  task->done = [self, index, borrows](const absl::Status& st, const batching::TaskTiming& timing) {
    self->items_[index].timing = timing;
    if (borrows) {
      self->borrowing_.fetch_sub(1);
      self->TryAnswerFailure();
    }
    if (!st.ok()) {
      if (const metrics::ModelMetrics* m = self->model_->metrics()) {
        if (st.code() == absl::StatusCode::kDeadlineExceeded) m->drops_deadline->Increment();
        if (st.code() == absl::StatusCode::kCancelled) m->drops_cancelled->Increment();
      }
      return self->Fail(st);
    }
    self->Computed(index, timing.batch_size);
  };
  if (borrows) borrowing_.fetch_add(1);
  if (absl::Status e = model_->batcher()->Enqueue(task); !e.ok()) {
    if (borrows) borrowing_.fetch_sub(1);
    if (model_->metrics() && e.code() == absl::StatusCode::kUnavailable &&
        absl::StartsWith(e.message(), "queue full")) {
      model_->metrics()->drops_queue_full->Increment();
    }
    Fail(e);
  }
}

// On the batcher's worker thread, which starts the model's next batch only once every task of
// this one has returned. A lone image is finished here (no hand-off to wake a worker for). The
// images of a larger batch, and costly postprocessing, go to the arena: answering a Classify
// (softmax, top-k, the response and gRPC's send) takes ~0.1 ms, and eight of them in a row
// kept a core from the next batch for ~1 ms of every ~37 ms batch of regnet_y_400mf.
void InferenceJob::Computed(int index, int batch_size) {
  if (!PostprocessOnArena() && batch_size <= 1) return Postprocess(index);
  std::shared_ptr<InferenceJob> self = shared_from_this();
  pool_->arena().enqueue([self, index] { self->Postprocess(index); });
}

void InferenceJob::Postprocess(int index) {
  if (completed_.load(std::memory_order_acquire)) return;  // another image failed
  const int64_t t0 = SteadyClock::Get()->NowMicros();
  absl::Status s = PostprocessImage(index);
  items_[index].postprocess_us = SteadyClock::Get()->NowMicros() - t0;
  if (!s.ok()) {
    return Fail(num_items_ > 1
                    ? absl::Status(s.code(), absl::StrCat("image ", index, ": ", s.message()))
                    : s);
  }
  ImageDone();
}

void InferenceJob::Fail(const absl::Status& status) {
  if (completed_.exchange(true)) return;
  failure_ = status;
  failure_ready_.store(true);
  TryAnswerFailure();
}

// Answers a failure once nothing can still read the request (the caller may free it as soon as
// it is answered): no Preprocess() call, no queued task with its input in place. Every one of
// those ends here; `answered_` lets exactly one through.
void InferenceJob::TryAnswerFailure() {
  if (!failure_ready_.load() || preprocessing_.load() > 0 || borrowing_.load() > 0) return;
  if (answered_.exchange(true)) return;
  RecordAnswer(failure_, SteadyClock::Get()->NowMicros());
  AnswerError(failure_);
}

void InferenceJob::ImageDone() {
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) Finish();
}

void InferenceJob::Finish() {
  if (completed_.exchange(true)) return;
  answered_.store(true);
  const int64_t now = SteadyClock::Get()->NowMicros();
  if (metrics::ModelMetrics* m = model_->metrics()) {
    for (int i = 0; i < num_items_; ++i) {
      const Item& item = items_[i];
      m->preprocess_seconds->Observe(static_cast<double>(item.preprocess_us) * 1e-6);
      m->queue_seconds->Observe(
          static_cast<double>(item.timing.dispatch_us - item.timing.enqueue_us) * 1e-6);
    }
  }
  RecordAnswer(absl::OkStatus(), now);
  AnswerOk(now);
}

void InferenceJob::FillServedBy(v1::ServedBy* by) const {
  const repository::ModelSpec& spec = model_->spec();
  by->set_model(spec.name);
  by->set_variant(spec.variant);
  by->set_version(spec.version);
  by->set_weights(model_->weights());
  by->set_decision_reason(reason_);
}

void InferenceJob::FillTiming(int i, int64_t now_us, v1::Timing* t, v1::Timing* total) const {
  const Item& item = items_[i];
  t->set_preprocess_us(item.preprocess_us);
  t->set_queue_us(item.timing.dispatch_us - item.timing.enqueue_us);
  t->set_compute_us(item.timing.compute_end_us - item.timing.compute_start_us);
  t->set_total_us(now_us - arrival_us_);
  t->set_batch_size(item.timing.batch_size);
  t->set_postprocess_us(item.postprocess_us);
  total->set_preprocess_us(std::max(total->preprocess_us(), t->preprocess_us()));
  total->set_queue_us(std::max(total->queue_us(), t->queue_us()));
  total->set_compute_us(std::max(total->compute_us(), t->compute_us()));
  total->set_batch_size(std::max(total->batch_size(), t->batch_size()));
  total->set_postprocess_us(std::max(total->postprocess_us(), t->postprocess_us()));
  total->set_total_us(now_us - arrival_us_);
}

void InferenceJob::RecordAnswer(const absl::Status& status, int64_t now_us) {
  if (!options_.metrics) return;
  metrics::ModelMetrics* m =
      model_ && model_->metrics() ? model_->metrics() : options_.metrics->unrouted();
  const int rpc = static_cast<int>(rpc_);
  const int code = static_cast<int>(status.code());
  m->requests[rpc][code >= 0 && code < metrics::kNumCodes ? code : 2]->Increment();
  m->request_seconds[rpc]->Observe(static_cast<double>(now_us - arrival_us_) * 1e-6);
  if (m->within_budget && deadline_us_ != batching::kNoDeadline) {
    (status.ok() && now_us <= deadline_us_ ? m->within_budget : m->past_budget)->Increment();
  }
  if (policy_index_ >= 0 && policy_index_ < static_cast<int>(m->decisions.size())) {
    m->decisions[policy_index_]->Increment();
  }
}

}  // namespace visionserve::api
