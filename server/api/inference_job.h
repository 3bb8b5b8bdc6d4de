#pragma once

// One Classify or Detect request on its way through the server, independent of how it arrived
// (unary call or stream message): pick the model -> validate -> preprocess each image as a TBB
// task -> one batcher task per image -> (postprocess) -> exactly one answer.
//
// The images of a request are separate batcher tasks and may run in different batches; the
// request completes when the last one finishes, or as soon as one fails (the others still run
// or get dropped, and their results are discarded).
//
// InferenceJob holds everything the two RPCs share; ClassifyJob (classify_job.h) and DetectJob
// (detect_job.h) add their options, preprocessing, postprocessing and response.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/executor.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "server/metrics/metrics.h"
#include "server/preprocess/preprocess.h"
#include "server/repository/repository.h"
#include "vision_service.pb.h"

namespace visionserve::api {

struct JobOptions {
  int max_images_per_request = 64;
  preprocess::Limits limits;
  metrics::ServerMetrics* metrics = nullptr;  // not owned; null: no metrics
};
using ClassifyOptions = JobOptions;  // the name ServerOptions has always used

// The fields ClassifyRequest and DetectRequest share (same numbers, same meaning).
struct RequestView {
  enum class Target { kNone, kModel, kPolicy, kInlinePolicy };
  const std::string* request_id = nullptr;
  Target target = Target::kNone;
  const std::string* model = nullptr;
  const std::string* policy = nullptr;
  const v1::InlinePolicy* inline_policy = nullptr;
  const google::protobuf::RepeatedPtrField<v1::Image>* images = nullptr;
  int priority = 0;

  template <typename Request>
  static RequestView Of(const Request& r) {
    RequestView v;
    v.request_id = &r.request_id();
    v.model = &r.model();
    v.policy = &r.policy();
    v.inline_policy = &r.inline_policy();
    v.target = r.has_inline_policy() ? Target::kInlinePolicy
               : r.has_policy()      ? Target::kPolicy
               : r.has_model()       ? Target::kModel
                                     : Target::kNone;
    v.images = &r.images();
    v.priority = r.priority();
    return v;
  }
};

class InferenceJob : public std::enable_shared_from_this<InferenceJob> {
 public:
  // Per-image state.
  struct Item {
    std::vector<float> input, output;
    int64_t preprocess_us = 0;
    int64_t postprocess_us = 0;
    batching::TaskTiming timing;
  };
  virtual ~InferenceJob();

 protected:
  InferenceJob(metrics::Rpc rpc, repository::ModelTask task, const RequestView& request,
               int64_t deadline_us, std::shared_ptr<std::atomic<bool>> cancelled,
               engine::ThreadPool* pool, const JobOptions& options);

  // Chooses the model (by name, policy or default, among models of this job's task), validates
  // the shared fields and ValidateFor(), then starts preprocessing. Any failure is answered
  // through AnswerError.
  void Begin(const repository::ModelRepository* models);

  // The task-specific parts. Validate the request's own options for the chosen model.
  virtual absl::Status ValidateFor(const repository::ServedModel& model) = 0;
  // Image `index` when it already is the model's input (a checked FLOAT32 tensor, read in place
  // from the request: no copy), else an empty span. Runs on the engine arena.
  virtual absl::StatusOr<std::span<const float>> InputInPlace(int /*index*/) {
    return std::span<const float>();
  }
  // Fills `out` (the model's input for one image) from image `index`; runs on the engine arena.
  virtual absl::Status PreprocessImage(int index, std::span<float> out) = 0;
  // Runs on the engine arena after image `index`'s batch; an error fails the request.
  virtual absl::Status PostprocessImage(int /*index*/) { return absl::OkStatus(); }
  // True: PostprocessImage is worth a task of its own (it is not cheap).
  virtual bool PostprocessOnArena() const { return false; }
  // Builds the response and calls the caller's completion (exactly once).
  virtual void AnswerOk(int64_t now_us) = 0;
  virtual void AnswerError(const absl::Status& status) = 0;

  // For subclasses' responses.
  void FillServedBy(v1::ServedBy* by) const;
  // Image i's timing into *t, and the request-level maxima into *total.
  void FillTiming(int i, int64_t now_us, v1::Timing* t, v1::Timing* total) const;

  const RequestView request_;
  repository::ServedModel* model_ = nullptr;  // set once chosen
  const JobOptions options_;
  std::unique_ptr<Item[]> items_;
  int num_items_ = 0;
  int64_t arrival_us_ = 0;

 private:
  void Preprocess(int index);
  void Computed(int index, int batch_size);
  void Postprocess(int index);
  void Fail(const absl::Status& status);
  void TryAnswerFailure();
  void ImageDone();
  void Finish();
  // Counts the answer (code, latency, budget) on the chosen model's metrics.
  void RecordAnswer(const absl::Status& status, int64_t now_us);

  const metrics::Rpc rpc_;
  const repository::ModelTask task_;
  int64_t deadline_us_ = 0;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  engine::ThreadPool* pool_;
  int policy_index_ = -1;  // metrics decision counter of the routing policy
  std::string reason_;
  std::atomic<int> remaining_{0};
  std::atomic<bool> completed_{false};  // Fail or Finish has begun (first one wins)
  std::atomic<int> preprocessing_{0};   // Preprocess() calls not yet returned
  std::atomic<int> borrowing_{0};       // batcher tasks reading the request in place, not done
  absl::Status failure_;                // written by the winning Fail before ready
  std::atomic<bool> failure_ready_{false};
  std::atomic<bool> answered_{false};
};

// Validates an image's raw tensor dims against the limits (UINT8 [H, W, 3]).
absl::Status CheckRgbTensor(const v1::RawTensor& t, const preprocess::Limits& limits);

}  // namespace visionserve::api
