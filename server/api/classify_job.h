#pragma once

// A Classify request (see inference_job.h for the shared pipeline): resize/crop/normalize
// preprocessing, softmax and top-k with the model's labels.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "server/api/inference_job.h"

namespace visionserve::api {

class ClassifyJob final : public InferenceJob {
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
                    const JobOptions& options, Completion done);

 private:
  ClassifyJob(metrics::Rpc rpc, const v1::ClassifyRequest& request, int64_t deadline_us,
              std::shared_ptr<std::atomic<bool>> cancelled, engine::ThreadPool* pool,
              const JobOptions& options, Completion done);
  absl::Status ValidateFor(const repository::ServedModel& model) override;
  absl::StatusOr<std::span<const float>> InputInPlace(int index) override;
  absl::Status PreprocessImage(int index, std::span<float> out) override;
  void AnswerOk(int64_t now_us) override;
  void AnswerError(const absl::Status& status) override;

  const v1::ClassifyRequest* request_msg_;
  int top_k_ = 5;
  Completion done_;
};

// The floats of a FLOAT32 tensor when its bytes are float-aligned and a whole number of floats
// (protobuf's bytes live in malloc'ed memory, so they are), else an empty span.
std::span<const float> FloatsInPlace(const v1::RawTensor& t);
// The error for a tensor of another dtype.
inline constexpr const char* kTensorDtypes = "tensor dtype must be UINT8, FLOAT32 or FLOAT16";
// Checks a FLOAT32 or FLOAT16 tensor as a preprocessed size × size × 3 model input (shape,
// finite) and copies (FLOAT16: converts) it into `out`; FLOAT32 is read in place when
// FloatsInPlace allows, else through an aligned copy.
absl::Status CheckFloatTensorInto(const v1::RawTensor& t, int size, std::span<float> out);
// An image that is a FLOAT32 tensor usable in place as a size × size × 3 model input: its floats,
// checked (shape, finite); an empty span when it is not such a tensor or cannot be read in place.
absl::StatusOr<std::span<const float>> CheckedFloatsInPlace(const v1::Image& image, int size);

// Decodes or checks one image into a classifier's input (resize, crop, normalize; or a
// preprocessed FLOAT32 or FLOAT16 tensor). Shared with tools that preprocess without a server.
absl::Status PreprocessForClassify(const v1::Image& image, const preprocess::ClassifySpec& spec,
                                   const preprocess::Limits& limits, std::span<float> out);

}  // namespace visionserve::api
