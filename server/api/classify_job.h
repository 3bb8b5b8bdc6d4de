#pragma once

// One Classify request on its way through the server, independent of how it arrived (unary
// call or stream message): validate -> pick the model -> preprocess each image as a TBB task
// -> one batcher task per image -> softmax/top-k -> exactly one completion callback.
//
// The images of a request are separate batcher tasks and may run in different batches; the
// request completes when the last one finishes, or as soon as one fails (the others still run
// or get dropped, and their results are discarded).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "engine/executor.h"
#include "server/metrics/metrics.h"
#include "server/preprocess/preprocess.h"
#include "server/repository/repository.h"
#include "vision_service.pb.h"

namespace visionserve::api {

struct ClassifyOptions {
  int max_images_per_request = 64;
  preprocess::Limits limits;
  metrics::ServerMetrics* metrics = nullptr;  // not owned; null: no metrics
};

class ClassifyJob : public std::enable_shared_from_this<ClassifyJob> {
 public:
  // Called exactly once; on error `response` holds only the request id.
  using Completion = std::function<void(const absl::Status&, v1::ClassifyResponse response)>;

  // `request` must stay valid until `done` has run (it is read, not copied: images are large).
  // `deadline_us` is on batching::SteadyClock (kNoDeadline for none); `cancelled` is shared
  // with the caller, who sets it when the client goes away and then wakes the batchers.
  // A failure is answered once no image of the request is still being preprocessed.
  static void Start(metrics::Rpc rpc, const v1::ClassifyRequest& request, int64_t deadline_us,
                    std::shared_ptr<std::atomic<bool>> cancelled,
                    const repository::ModelRepository* models, engine::ThreadPool* pool,
                    const ClassifyOptions& options, Completion done);

  // Per-image state, public for the .cc's helpers.
  struct Item;
  ~ClassifyJob();

 private:
  ClassifyJob() = default;
  void Preprocess(int index);
  void Fail(const absl::Status& status);
  void TryAnswerFailure();
  void ImageDone(int index);
  void Finish();
  // Counts the answer (code, latency, budget) on the chosen model's metrics.
  void RecordAnswer(const absl::Status& status, int64_t now_us);

  const v1::ClassifyRequest* request_ = nullptr;
  metrics::Rpc rpc_ = metrics::Rpc::kClassify;
  int policy_index_ = -1;  // metrics decision counter of the routing policy
  int64_t arrival_us_ = 0;
  int64_t deadline_us_ = 0;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  repository::ServedModel* model_ = nullptr;
  std::string reason_;
  int top_k_ = 5;
  ClassifyOptions options_;
  std::unique_ptr<Item[]> items_;
  int num_items_ = 0;
  std::atomic<int> remaining_{0};
  std::atomic<bool> completed_{false};  // Fail or Finish has begun (first one wins)
  std::atomic<int> preprocessing_{0};   // Preprocess() calls not yet returned
  absl::Status failure_;                // written by the winning Fail before ready
  std::atomic<bool> failure_ready_{false};
  std::atomic<bool> answered_{false};
  Completion done_;
};

}  // namespace visionserve::api
