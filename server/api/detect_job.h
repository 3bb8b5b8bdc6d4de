#pragma once

// A Detect request (see inference_job.h for the shared pipeline): letterbox preprocessing
// recorded per image, then per image on the engine arena: decode the YOLOv8-convention output,
// threshold, class-aware NMS, and map the kept boxes back to original-image pixels.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "server/api/inference_job.h"
#include "server/detect/letterbox.h"
#include "server/detect/postprocess.h"

namespace visionserve::api {

// Defaults of DetectRequest's zero values.
inline constexpr float kDefaultScoreThreshold = 0.25f;
inline constexpr float kDefaultIouThreshold = 0.45f;
inline constexpr int kDefaultMaxDetections = 100;
inline constexpr int kMaxDetectionsLimit = 1000;

class DetectJob final : public InferenceJob {
 public:
  // Called exactly once; on error `response` holds only the request id.
  using Completion = std::function<void(const absl::Status&, v1::DetectResponse response)>;

  // As ClassifyJob::Start.
  static void Start(metrics::Rpc rpc, const v1::DetectRequest& request, int64_t deadline_us,
                    std::shared_ptr<std::atomic<bool>> cancelled,
                    const repository::ModelRepository* models, engine::ThreadPool* pool,
                    const JobOptions& options, Completion done);

 private:
  DetectJob(metrics::Rpc rpc, const v1::DetectRequest& request, int64_t deadline_us,
            std::shared_ptr<std::atomic<bool>> cancelled, engine::ThreadPool* pool,
            const JobOptions& options, Completion done);
  absl::Status ValidateFor(const repository::ServedModel& model) override;
  absl::StatusOr<std::span<const float>> InputInPlace(int index) override;
  absl::Status PreprocessImage(int index, std::span<float> out) override;
  absl::Status PostprocessImage(int index) override;
  bool PostprocessOnArena() const override { return true; }
  void AnswerOk(int64_t now_us) override;
  void AnswerError(const absl::Status& status) override;

  const v1::DetectRequest* request_msg_;
  detect::DecodeOptions decode_;
  detect::NmsOptions nms_;
  std::vector<int32_t> class_filter_;
  std::vector<detect::LetterboxGeometry> geometry_;         // per image
  std::vector<std::vector<detect::Detection>> detections_;  // per image
  Completion done_;
};

// Letterboxes one image into a detector's input (input_size² × 3, [0, 1] unless the spec's
// mean/std say otherwise) and records the geometry. A FLOAT32 tensor must already be the
// model's input ([S, S, 3]); its geometry is the identity.
absl::Status PreprocessForDetect(const v1::Image& image, int input_size,
                                 const detect::LetterboxNormalize& norm,
                                 const preprocess::Limits& limits, std::span<float> out,
                                 detect::LetterboxGeometry* geometry);

}  // namespace visionserve::api
