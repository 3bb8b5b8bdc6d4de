#pragma once

// visionserve.v1.VisionService on gRPC's callback API. Reactors only start a ClassifyJob or
// DetectJob and Finish() when it completes (from whichever thread completes it); nothing here
// blocks a gRPC thread.

#include <atomic>
#include <memory>

#include "engine/executor.h"
#include "server/api/classify_job.h"
#include "server/api/detect_job.h"
#include "server/repository/repository.h"
#include "vision_service.grpc.pb.h"

namespace visionserve::api {

class VisionServiceImpl final : public v1::VisionService::CallbackService {
 public:
  VisionServiceImpl(const repository::ModelRepository* models,
                    std::shared_ptr<engine::ThreadPool> pool, JobOptions options);

  // From now on new requests (and new stream messages) get UNAVAILABLE "shutting down";
  // accepted ones complete.
  void StartDraining() { draining_.store(true); }
  bool draining() const { return draining_.load(); }
  // Accepted requests (and stream messages) not yet answered.
  int64_t in_flight() const { return in_flight_.load(); }

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override;
  grpc::ServerBidiReactor<v1::ClassifyRequest, v1::ClassifyResponse>* ClassifyStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Detect(grpc::CallbackServerContext* context,
                                   const v1::DetectRequest* request,
                                   v1::DetectResponse* response) override;
  grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse>* DetectStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context,
                                     const v1::GetModelRequest* request,
                                     v1::ModelInfo* response) override;

  // Starts a job for one request, counting it in flight until `done` has run. `request` must
  // stay valid until then.
  void StartJob(metrics::Rpc rpc, const v1::ClassifyRequest& request, int64_t deadline_us,
                std::shared_ptr<std::atomic<bool>> cancelled, ClassifyJob::Completion done);
  void StartJob(metrics::Rpc rpc, const v1::DetectRequest& request, int64_t deadline_us,
                std::shared_ptr<std::atomic<bool>> cancelled, DetectJob::Completion done);
  // Wakes every batcher so cancelled tasks leave their queues now.
  void WakeBatchers() const;

 private:
  template <typename Request, typename Response>
  class UnaryCall;
  template <typename Request, typename Response>
  class StreamCall;
  // Answers UNAVAILABLE while draining (true), else counts the request in flight (false).
  template <typename Response, typename Done>
  bool RejectIfDraining(metrics::Rpc rpc, const std::string& request_id, Done& done);

  const repository::ModelRepository* models_;
  std::shared_ptr<engine::ThreadPool> pool_;
  JobOptions options_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};
};

// Fills `out` from a served model (metadata, state, latency profile).
void DescribeModel(const repository::ServedModel& model, bool is_default, v1::ModelInfo* out);

// The call's deadline on batching::SteadyClock, or kNoDeadline.
int64_t DeadlineMicros(const grpc::CallbackServerContext& context);

}  // namespace visionserve::api
