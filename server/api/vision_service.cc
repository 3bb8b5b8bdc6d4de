#include "server/api/vision_service.h"

#include <chrono>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/api/status.h"
#include "server/batching/clock.h"

namespace visionserve::api {

using batching::kNoDeadline;
using batching::SteadyClock;

int64_t DeadlineMicros(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  const auto now = std::chrono::system_clock::now();
  if (deadline >= now + std::chrono::hours(24 * 365)) return kNoDeadline;
  const int64_t left =
      std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
  return SteadyClock::Get()->NowMicros() + left;
}

VisionServiceImpl::VisionServiceImpl(const repository::ModelRepository* models,
                                     std::shared_ptr<engine::ThreadPool> pool, JobOptions options)
    : models_(models), pool_(std::move(pool)), options_(options) {}

template <typename Response, typename Done>
bool VisionServiceImpl::RejectIfDraining(metrics::Rpc rpc, const std::string& request_id,
                                         Done& done) {
  if (!draining()) {
    in_flight_.fetch_add(1);
    return false;
  }
  if (options_.metrics) {
    metrics::ModelMetrics* m = options_.metrics->unrouted();
    m->requests[static_cast<int>(rpc)][static_cast<int>(absl::StatusCode::kUnavailable)]
        ->Increment();
    m->request_seconds[static_cast<int>(rpc)]->Observe(0);
  }
  Response response;
  response.set_request_id(request_id);
  done(absl::UnavailableError("shutting down"), std::move(response));
  return true;
}

void VisionServiceImpl::StartJob(metrics::Rpc rpc, const v1::ClassifyRequest& request,
                                 int64_t deadline_us, std::shared_ptr<std::atomic<bool>> cancelled,
                                 ClassifyJob::Completion done) {
  if (RejectIfDraining<v1::ClassifyResponse>(rpc, request.request_id(), done)) return;
  ClassifyJob::Start(rpc, request, deadline_us, std::move(cancelled), models_, pool_.get(),
                     options_,
                     [this, done = std::move(done)](const absl::Status& s, v1::ClassifyResponse r) {
                       done(s, std::move(r));
                       in_flight_.fetch_sub(1);
                     });
}

void VisionServiceImpl::StartJob(metrics::Rpc rpc, const v1::DetectRequest& request,
                                 int64_t deadline_us, std::shared_ptr<std::atomic<bool>> cancelled,
                                 DetectJob::Completion done) {
  if (RejectIfDraining<v1::DetectResponse>(rpc, request.request_id(), done)) return;
  DetectJob::Start(rpc, request, deadline_us, std::move(cancelled), models_, pool_.get(), options_,
                   [this, done = std::move(done)](const absl::Status& s, v1::DetectResponse r) {
                     done(s, std::move(r));
                     in_flight_.fetch_sub(1);
                   });
}

void VisionServiceImpl::WakeBatchers() const {
  for (const auto& m : models_->models()) {
    if (m->state() == repository::ModelState::kReady && m->batcher()) m->batcher()->Wake();
  }
}

// ---------------------------------------------------------------------------------------------
// Classify and Detect (unary)

template <typename Request, typename Response>
class VisionServiceImpl::UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  UnaryCall(VisionServiceImpl* service, metrics::Rpc rpc, grpc::CallbackServerContext* context,
            const Request* request, Response* response)
      : service_(service), cancelled_(std::make_shared<std::atomic<bool>>(false)) {
    service->StartJob(rpc, *request, DeadlineMicros(*context), cancelled_,
                      [this, response](const absl::Status& s, Response r) {
                        if (s.ok()) *response = std::move(r);
                        Finish(ToGrpcStatus(s));
                      });
  }
  void OnCancel() override {
    cancelled_->store(true);
    service_->WakeBatchers();
  }
  void OnDone() override { delete this; }

 private:
  VisionServiceImpl* service_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
};

grpc::ServerUnaryReactor* VisionServiceImpl::Classify(grpc::CallbackServerContext* context,
                                                      const v1::ClassifyRequest* request,
                                                      v1::ClassifyResponse* response) {
  return new UnaryCall<v1::ClassifyRequest, v1::ClassifyResponse>(this, metrics::Rpc::kClassify,
                                                                  context, request, response);
}

grpc::ServerUnaryReactor* VisionServiceImpl::Detect(grpc::CallbackServerContext* context,
                                                    const v1::DetectRequest* request,
                                                    v1::DetectResponse* response) {
  return new UnaryCall<v1::DetectRequest, v1::DetectResponse>(this, metrics::Rpc::kDetect, context,
                                                              request, response);
}

// ---------------------------------------------------------------------------------------------
// ClassifyStream and DetectStream: one response per message, in completion order; a failed
// message gets a response with `error` set and the stream goes on.

template <typename Request, typename Response>
class VisionServiceImpl::StreamCall final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  StreamCall(VisionServiceImpl* service, metrics::Rpc rpc, grpc::CallbackServerContext* context)
      : service_(service),
        rpc_(rpc),
        context_(context),
        cancelled_(std::make_shared<std::atomic<bool>>(false)) {
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Step([this] { reads_done_ = true; });
      return;
    }
    Step([this] { ++pending_; });
    // The job reads the request until it answers: hand it over (a swap, not a copy) and keep it
    // alive in the completion; the next read fills a fresh message.
    auto request = std::make_shared<Request>(std::move(request_));
    request_.Clear();
    const Request& ref = *request;
    service_->StartJob(rpc_, ref, DeadlineMicros(*context_), cancelled_,
                       [this, request](const absl::Status& s, Response r) {
                         if (!s.ok()) {
                           r.mutable_error()->set_code(static_cast<int>(s.code()));
                           r.mutable_error()->set_message(std::string(s.message()));
                         }
                         Step([&] {
                           --pending_;
                           outbox_.push_back(std::move(r));
                         });
                       });
    this->StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    Step([&] {
      writing_ = false;
      outbox_.pop_front();
      if (!ok) broken_ = true;  // the client is gone: drop what is left, finish when idle
    });
  }

  void OnCancel() override {
    cancelled_->store(true);
    service_->WakeBatchers();
    // The outstanding read ends with OnReadDone(false); Finish waits for it and for every job.
    Step([this] { broken_ = true; });
  }

  void OnDone() override { delete this; }

 private:
  // Applies `change` under the lock, then starts the next write or finishes the call. gRPC
  // operations are started outside the lock: a reaction may run inline on this thread.
  template <typename F>
  void Step(F change) {
    const Response* write = nullptr;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      change();
      if (broken_ && !writing_) outbox_.clear();
      if (!writing_ && !outbox_.empty()) {
        writing_ = true;
        write = &outbox_.front();  // deque: stays valid while later responses are appended
      } else if (!finished_ && reads_done_ && pending_ == 0 && !writing_ && outbox_.empty()) {
        finished_ = true;
        finish = true;
      }
    }
    if (write) this->StartWrite(write);
    if (finish) this->Finish(cancelled_->load() ? grpc::Status::CANCELLED : grpc::Status::OK);
  }

  VisionServiceImpl* service_;
  const metrics::Rpc rpc_;
  grpc::CallbackServerContext* context_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  Request request_;  // only touched by the read chain
  absl::Mutex mu_;
  std::deque<Response> outbox_ ABSL_GUARDED_BY(mu_);
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

grpc::ServerBidiReactor<v1::ClassifyRequest, v1::ClassifyResponse>*
VisionServiceImpl::ClassifyStream(grpc::CallbackServerContext* context) {
  return new StreamCall<v1::ClassifyRequest, v1::ClassifyResponse>(
      this, metrics::Rpc::kClassifyStream, context);
}

grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse>* VisionServiceImpl::DetectStream(
    grpc::CallbackServerContext* context) {
  return new StreamCall<v1::DetectRequest, v1::DetectResponse>(this, metrics::Rpc::kDetectStream,
                                                               context);
}

// ---------------------------------------------------------------------------------------------
// Models

void DescribeModel(const repository::ServedModel& model, bool is_default, v1::ModelInfo* out) {
  const repository::ModelSpec& s = model.spec();
  out->set_name(s.name);
  out->set_variant(s.variant);
  out->set_family(s.family);
  out->set_task(repository::ModelTaskName(s.task));
  out->set_num_anchors(s.num_anchors);
  out->set_version(s.version);
  const repository::ModelState state = model.state();
  out->set_state(static_cast<v1::ModelState>(static_cast<int>(state) + 1));
  out->set_state_reason(model.state_reason());
  out->set_weights(model.weights());
  out->set_num_classes(s.num_classes);
  out->add_input_shape(s.input_size);
  out->add_input_shape(s.input_size);
  out->add_input_shape(3);
  v1::Preprocessing* p = out->mutable_preprocessing();
  p->set_resize_size(s.resize_size);
  p->set_crop_size(s.input_size);
  p->set_interpolation(s.bicubic ? "bicubic" : "bilinear");
  p->set_letterbox(s.task == repository::ModelTask::kDetect);
  for (int i = 0; i < 3; ++i) {
    p->add_mean(s.mean[i]);
    p->add_std(s.stddev[i]);
  }
  out->set_params(s.params);
  out->set_gmacs(s.gmacs);
  out->set_top1(s.top1);
  out->set_top1_source(s.top1_source);
  v1::BatchingInfo* b = out->mutable_batching();
  b->set_max_batch_size(s.batching.max_batch_size);
  b->set_max_queue_delay_us(s.batching.max_queue_delay_us);
  for (int x : s.batching.preferred_batch_sizes) b->add_preferred_batch_sizes(x);
  b->set_max_queue_size(s.batching.max_queue_size);
  b->set_instances(s.batching.instances);
  b->set_default_queue_timeout_us(s.batching.default_queue_timeout_us);
  for (const auto& pt : model.profile().Snapshot()) {
    if (pt.micros <= 0) continue;
    v1::LatencyPoint* lp = out->add_latency_profile();
    lp->set_batch_size(pt.batch_size);
    lp->set_latency_ms(pt.micros / 1000.0);
    lp->set_measured(pt.measured);
    lp->set_samples(pt.samples);
  }
  out->set_is_default(is_default);
}

grpc::ServerUnaryReactor* VisionServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                        const v1::ListModelsRequest*,
                                                        v1::ListModelsResponse* response) {
  for (const auto& m : models_->models()) {
    DescribeModel(*m, m.get() == models_->default_model(m->spec().task), response->add_models());
  }
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* VisionServiceImpl::GetModel(grpc::CallbackServerContext* context,
                                                      const v1::GetModelRequest* request,
                                                      v1::ModelInfo* response) {
  auto* reactor = context->DefaultReactor();
  const std::string name =
      request->name().empty()
          ? (models_->default_model() ? models_->default_model()
                                      : models_->default_model(repository::ModelTask::kDetect))
                ->spec()
                .name
          : request->name();
  auto m = models_->Find(name);
  if (!m.ok()) {
    reactor->Finish(ToGrpcStatus(m.status()));
  } else {
    DescribeModel(**m, *m == models_->default_model((*m)->spec().task), response);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

}  // namespace visionserve::api
