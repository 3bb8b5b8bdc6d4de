#include "server/api/classify_job.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/batching/clock.h"
#include "server/policy/router.h"

namespace visionserve::api {

using batching::SteadyClock;

struct ClassifyJob::Item {
  std::vector<float> input, output;
  int64_t preprocess_us = 0;
  batching::TaskTiming timing;
};

namespace {

absl::Status PreprocessImage(const v1::Image& image, const preprocess::ClassifySpec& spec,
                             const preprocess::Limits& limits, std::span<float> out) {
  switch (image.data_case()) {
    case v1::Image::kEncoded: {
      const std::string& b = image.encoded();
      return preprocess::DecodeAndPreprocess(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size()), spec,
          limits, out);
    }
    case v1::Image::kTensor: {
      const v1::RawTensor& t = image.tensor();
      const std::string& d = t.data();
      if (t.dtype() == v1::RawTensor::UINT8) {
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
        return preprocess::PreprocessRawRgb(
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(d.data()), d.size()),
            static_cast<int>(t.shape(0)), static_cast<int>(t.shape(1)), spec, limits, out);
      }
      if (t.dtype() == v1::RawTensor::FLOAT32) {
        if (d.size() % sizeof(float) != 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("FLOAT32 tensor data has ", d.size(), " bytes, not a multiple of 4"));
        }
        std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
        if (reinterpret_cast<uintptr_t>(d.data()) % alignof(float) == 0) {
          // Protobuf's bytes live in malloc'ed memory: read the floats in place (one copy less
          // of a 600 KB tensor per image).
          return preprocess::CheckPreprocessedFloat(
              std::span<const float>(reinterpret_cast<const float*>(d.data()),
                                     d.size() / sizeof(float)),
              shape, spec.crop_size, out);
        }
        std::vector<float> values(d.size() / sizeof(float));
        std::memcpy(values.data(), d.data(), d.size());
        return preprocess::CheckPreprocessedFloat(values, shape, spec.crop_size, out);
      }
      return absl::InvalidArgumentError("tensor dtype must be UINT8 or FLOAT32");
    }
    case v1::Image::DATA_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("image has neither encoded bytes nor a tensor");
}

}  // namespace

ClassifyJob::~ClassifyJob() = default;

void ClassifyJob::Start(metrics::Rpc rpc, const v1::ClassifyRequest& request, int64_t deadline_us,
                        std::shared_ptr<std::atomic<bool>> cancelled,
                        const repository::ModelRepository* models, engine::ThreadPool* pool,
                        const ClassifyOptions& options, Completion done) {
  std::shared_ptr<ClassifyJob> job(new ClassifyJob());
  job->arrival_us_ = SteadyClock::Get()->NowMicros();
  job->deadline_us_ = deadline_us;
  job->cancelled_ = std::move(cancelled);
  job->options_ = options;
  job->done_ = std::move(done);
  job->request_ = &request;
  job->rpc_ = rpc;

  // Which model: by name, by policy, or the server's default (a default policy or model).
  repository::ServedModel* model = nullptr;
  const repository::PolicyTable& policies = models->policies();
  const policy::Policy* chosen_policy = nullptr;
  policy::Policy inline_policy;
  switch (request.target_case()) {
    case v1::ClassifyRequest::kModel: {
      auto m = models->Find(request.model());
      if (!m.ok()) return job->Fail(m.status());
      model = *m;
      job->reason_ = "requested by name";
      break;
    }
    case v1::ClassifyRequest::kPolicy:
      chosen_policy = policies.Find(request.policy());
      if (!chosen_policy) {
        std::string names;
        for (const auto& p : policies.policies)
          absl::StrAppend(&names, names.empty() ? "" : ", ", p.name);
        return job->Fail(absl::NotFoundError(
            absl::StrCat("no policy named \"", request.policy(), "\"; configured: ", names)));
      }
      break;
    case v1::ClassifyRequest::kInlinePolicy: {
      const v1::InlinePolicy& ip = request.inline_policy();
      v1::PolicyConfig pc;
      pc.set_name("inline");
      pc.set_latency_budget_ms(ip.latency_budget_ms());
      pc.set_min_top1(ip.min_top1());
      pc.set_objective(static_cast<v1::PolicyConfig::Objective>(ip.objective()));
      pc.set_on_miss(static_cast<v1::PolicyConfig::OnMiss>(ip.on_miss()));
      *pc.mutable_families() = ip.families();
      auto p = repository::ToPolicy(pc);
      if (!p.ok()) return job->Fail(p.status());
      inline_policy = std::move(*p);
      chosen_policy = &inline_policy;
      break;
    }
    case v1::ClassifyRequest::TARGET_NOT_SET:
      if (!policies.default_policy.empty()) {
        chosen_policy = policies.Find(policies.default_policy);
      } else {
        model = models->default_model();
        job->reason_ = "default model";
      }
      break;
  }
  if (chosen_policy) {
    std::vector<policy::Candidate> candidates;
    std::vector<repository::ServedModel*> served;
    for (const auto& m : models->models()) {
      if (m->state() != repository::ModelState::kReady) continue;
      policy::Candidate c;
      c.name = m->spec().name;
      c.family = m->spec().info->family;
      c.top1 = m->spec().info->top1;
      c.latency = &m->profile();
      c.max_batch_size = m->spec().batching.max_batch_size;
      c.instances = m->spec().batching.instances;
      c.queue_depth = m->batcher()->queue_depth();
      c.in_flight = m->batcher()->in_flight();
      candidates.push_back(std::move(c));
      served.push_back(m.get());
    }
    if (candidates.empty()) return job->Fail(absl::UnavailableError("no model is READY"));
    auto decision = policy::Choose(*chosen_policy, candidates, job->arrival_us_, deadline_us);
    if (!decision.ok()) return job->Fail(decision.status());
    model = served[decision->index];
    job->reason_ = decision->reason;
    job->policy_index_ = chosen_policy == &inline_policy
                             ? static_cast<int>(policies.policies.size())
                             : static_cast<int>(chosen_policy - policies.policies.data());
    // A policy that rejects misses puts its budget on the tasks: the batcher drops what can no
    // longer make it. One that serves the fastest anyway keeps only the call's deadline.
    if (chosen_policy->on_miss == policy::OnMiss::kReject && chosen_policy->latency_budget_ms > 0) {
      deadline_us =
          std::min(deadline_us, job->arrival_us_ +
                                    static_cast<int64_t>(chosen_policy->latency_budget_ms * 1000));
      job->deadline_us_ = deadline_us;
    }
  }
  // Validate.
  if (request.images_size() == 0) {
    return job->Fail(absl::InvalidArgumentError("request has no images"));
  }
  if (request.images_size() > options.max_images_per_request) {
    return job->Fail(absl::InvalidArgumentError(
        absl::StrCat("request has ", request.images_size(), " images; at most ",
                     options.max_images_per_request, " are allowed")));
  }
  job->model_ = model;  // from here on failures count on the model's metrics
  const int classes = model->spec().num_classes;
  if (request.top_k() < 0 || request.top_k() > classes) {
    return job->Fail(absl::InvalidArgumentError(
        absl::StrCat("top_k ", request.top_k(), " is outside 1..", classes, " (0 means 5)")));
  }
  job->top_k_ = request.top_k() == 0 ? std::min(5, classes) : request.top_k();
  if (request.priority() < 0 || request.priority() >= model->spec().batching.priority_levels) {
    return job->Fail(absl::InvalidArgumentError(absl::StrCat(
        "priority ", request.priority(), " is outside 0..",
        model->spec().batching.priority_levels - 1, " for model ", model->spec().name)));
  }
  if (model->state() != repository::ModelState::kReady) {
    return job->Fail(absl::UnavailableError(absl::StrCat(
        "model ", model->spec().name, " is ", repository::ModelStateName(model->state()),
        ", not READY", model->state_reason().empty() ? "" : ": ", model->state_reason())));
  }
  if (deadline_us != batching::kNoDeadline && job->arrival_us_ >= deadline_us) {
    return job->Fail(absl::DeadlineExceededError("deadline passed before the request started"));
  }
  job->num_items_ = request.images_size();
  job->items_ = std::make_unique<Item[]>(job->num_items_);
  job->remaining_.store(job->num_items_);
  for (int i = 0; i < job->num_items_; ++i) {
    job->items_[i].input.resize(model->input_floats());
    job->items_[i].output.resize(model->output_floats());
  }
  // Decode and preprocess on the engine's arena, never on gRPC's threads; images in parallel.
  job->preprocessing_.store(job->num_items_);
  for (int i = 0; i < job->num_items_; ++i) {
    pool->arena().enqueue([job, i] { job->Preprocess(i); });
  }
}

void ClassifyJob::Preprocess(int index) {
  struct Done {  // this call no longer reads the request; a pending failure may be answered
    ClassifyJob* job;
    ~Done() {
      job->preprocessing_.fetch_sub(1);
      job->TryAnswerFailure();
    }
  } done{this};
  if (completed_.load(std::memory_order_acquire)) return;  // an earlier image failed
  Item& item = items_[index];
  const int64_t t0 = SteadyClock::Get()->NowMicros();
  absl::Status s = PreprocessImage(request_->images(index), model_->preprocess_spec(),
                                   options_.limits, item.input);
  item.preprocess_us = SteadyClock::Get()->NowMicros() - t0;
  if (!s.ok()) {
    return Fail(num_items_ > 1
                    ? absl::Status(s.code(), absl::StrCat("image ", index, ": ", s.message()))
                    : s);
  }
  auto task = std::make_unique<batching::BatchTask>();
  task->priority = request_->priority();
  task->deadline_us = deadline_us_;
  task->input = item.input;
  task->output = item.output;
  task->cancelled = cancelled_;
  std::shared_ptr<ClassifyJob> self = shared_from_this();
  task->done = [self, index](const absl::Status& st, const batching::TaskTiming& timing) {
    self->items_[index].timing = timing;
    if (!st.ok()) {
      if (const metrics::ModelMetrics* m = self->model_->metrics()) {
        if (st.code() == absl::StatusCode::kDeadlineExceeded) m->drops_deadline->Increment();
        if (st.code() == absl::StatusCode::kCancelled) m->drops_cancelled->Increment();
      }
      return self->Fail(st);
    }
    self->ImageDone(index);
  };
  if (absl::Status e = model_->batcher()->Enqueue(task); !e.ok()) {
    if (model_->metrics() && e.code() == absl::StatusCode::kUnavailable &&
        absl::StartsWith(e.message(), "queue full")) {
      model_->metrics()->drops_queue_full->Increment();
    }
    Fail(e);
  }
}

void ClassifyJob::Fail(const absl::Status& status) {
  if (completed_.exchange(true)) return;
  failure_ = status;
  failure_ready_.store(true);
  TryAnswerFailure();
}

// Answers a failure once no Preprocess() call can still read the request (the caller may free
// it as soon as it is answered). Both the failing thread and the last preprocessing call get
// here; `answered_` lets exactly one through.
void ClassifyJob::TryAnswerFailure() {
  if (!failure_ready_.load() || preprocessing_.load() > 0) return;
  if (answered_.exchange(true)) return;
  RecordAnswer(failure_, SteadyClock::Get()->NowMicros());
  v1::ClassifyResponse response;
  response.set_request_id(request_->request_id());
  Completion done = std::move(done_);
  done(failure_, std::move(response));
}

void ClassifyJob::ImageDone(int /*index*/) {
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) Finish();
}

void ClassifyJob::Finish() {
  if (completed_.exchange(true)) return;
  answered_.store(true);
  const int64_t now = SteadyClock::Get()->NowMicros();
  const repository::ModelSpec& spec = model_->spec();
  v1::ClassifyResponse response;
  response.set_request_id(request_->request_id());
  v1::ServedBy* by = response.mutable_served_by();
  by->set_model(spec.name);
  by->set_variant(spec.info->name);
  by->set_version(spec.version);
  by->set_weights(model_->weights());
  by->set_decision_reason(reason_);
  v1::Timing* total = response.mutable_timing();
  std::vector<int> order(spec.num_classes);
  for (int i = 0; i < num_items_; ++i) {
    const Item& item = items_[i];
    // Softmax (max-subtracted) and top-k.
    const float* logits = item.output.data();
    const float mx = *std::max_element(logits, logits + spec.num_classes);
    double sum = 0;
    for (int c = 0; c < spec.num_classes; ++c) sum += std::exp(double{logits[c]} - mx);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k_, order.end(), [&](int a, int b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    v1::Classification* result = response.add_results();
    for (int k = 0; k < top_k_; ++k) {
      v1::ClassScore* cs = result->add_classes();
      cs->set_index(order[k]);
      cs->set_label(spec.labels[order[k]]);
      cs->set_score(static_cast<float>(std::exp(double{logits[order[k]]} - mx) / sum));
    }
    v1::Timing* t = result->mutable_timing();
    t->set_preprocess_us(item.preprocess_us);
    t->set_queue_us(item.timing.dispatch_us - item.timing.enqueue_us);
    t->set_compute_us(item.timing.compute_end_us - item.timing.compute_start_us);
    t->set_total_us(now - arrival_us_);
    t->set_batch_size(item.timing.batch_size);
    total->set_preprocess_us(std::max(total->preprocess_us(), t->preprocess_us()));
    total->set_queue_us(std::max(total->queue_us(), t->queue_us()));
    total->set_compute_us(std::max(total->compute_us(), t->compute_us()));
    total->set_batch_size(std::max(total->batch_size(), t->batch_size()));
  }
  total->set_total_us(now - arrival_us_);
  if (metrics::ModelMetrics* m = model_->metrics()) {
    for (int i = 0; i < num_items_; ++i) {
      const v1::Timing& t = response.results(i).timing();
      m->preprocess_seconds->Observe(static_cast<double>(t.preprocess_us()) * 1e-6);
      m->queue_seconds->Observe(static_cast<double>(t.queue_us()) * 1e-6);
    }
  }
  RecordAnswer(absl::OkStatus(), now);
  Completion done = std::move(done_);
  done(absl::OkStatus(), std::move(response));
}

void ClassifyJob::RecordAnswer(const absl::Status& status, int64_t now_us) {
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
