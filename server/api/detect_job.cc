#include "server/api/detect_job.h"

#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/api/classify_job.h"

namespace visionserve::api {

namespace {
constexpr const char* kFloatTensorNote =
    " (a FLOAT32 or FLOAT16 tensor is the detector's letterboxed input; boxes come back in its "
    "pixels)";
}  // namespace

absl::Status PreprocessForDetect(const v1::Image& image, int input_size,
                                 const detect::LetterboxNormalize& norm,
                                 const preprocess::Limits& limits, std::span<float> out,
                                 detect::LetterboxGeometry* geometry) {
  thread_local detect::LetterboxScratch scratch;
  auto letterbox = [&](std::span<const uint8_t> rgb, int width, int height) -> absl::Status {
    auto g = detect::ComputeLetterbox(width, height, input_size, input_size);
    if (!g.ok()) return g.status();
    *geometry = *g;
    return detect::LetterboxImage(rgb, *g, norm, &scratch, out);
  };
  switch (image.data_case()) {
    case v1::Image::kEncoded: {
      const std::string& b = image.encoded();
      // Full-size decode: boxes are reported in the pixels of the image as sent.
      auto decoded = preprocess::Decode(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data()), b.size()), limits);
      if (!decoded.ok()) return decoded.status();
      return letterbox(decoded->rgb, decoded->width, decoded->height);
    }
    case v1::Image::kTensor: {
      const v1::RawTensor& t = image.tensor();
      const std::string& d = t.data();
      if (t.dtype() == v1::RawTensor::UINT8) {
        if (absl::Status s = CheckRgbTensor(t, limits); !s.ok()) return s;
        const int64_t h = t.shape(0), w = t.shape(1);
        if (h * w > limits.max_pixels) {
          return absl::InvalidArgumentError(absl::StrCat(
              "tensor has ", h * w, " pixels, more than the limit of ", limits.max_pixels));
        }
        if (static_cast<int64_t>(d.size()) != h * w * 3) {
          return absl::InvalidArgumentError(absl::StrCat("UINT8 tensor data has ", d.size(),
                                                         " bytes; shape [", h, ", ", w,
                                                         ", 3] needs ", h * w * 3));
        }
        return letterbox(
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(d.data()), d.size()),
            static_cast<int>(w), static_cast<int>(h));
      }
      if (t.dtype() == v1::RawTensor::FLOAT32 || t.dtype() == v1::RawTensor::FLOAT16) {
        if (absl::Status s = CheckFloatTensorInto(t, input_size, out); !s.ok()) {
          return absl::Status(s.code(), absl::StrCat(s.message(), kFloatTensorNote));
        }
        auto g = detect::ComputeLetterbox(input_size, input_size, input_size, input_size);
        if (!g.ok()) return g.status();
        *geometry = *g;
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(kTensorDtypes);
    }
    case v1::Image::DATA_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("image has neither encoded bytes nor a tensor");
}

void DetectJob::Start(metrics::Rpc rpc, const v1::DetectRequest& request, int64_t deadline_us,
                      std::shared_ptr<std::atomic<bool>> cancelled,
                      const repository::ModelRepository* models, engine::ThreadPool* pool,
                      const JobOptions& options, Completion done) {
  std::shared_ptr<DetectJob> job(new DetectJob(rpc, request, deadline_us, std::move(cancelled),
                                               pool, options, std::move(done)));
  job->Begin(models);
}

DetectJob::DetectJob(metrics::Rpc rpc, const v1::DetectRequest& request, int64_t deadline_us,
                     std::shared_ptr<std::atomic<bool>> cancelled, engine::ThreadPool* pool,
                     const JobOptions& options, Completion done)
    : InferenceJob(rpc, repository::ModelTask::kDetect, RequestView::Of(request), deadline_us,
                   std::move(cancelled), pool, options),
      request_msg_(&request),
      done_(std::move(done)) {}

absl::Status DetectJob::ValidateFor(const repository::ServedModel& model) {
  const v1::DetectRequest& r = *request_msg_;
  const float score = r.score_threshold();
  if (!(score >= 0 && score < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "score_threshold ", score, " is outside [0, 1) (0 means ", kDefaultScoreThreshold, ")"));
  }
  const float iou = r.iou_threshold();
  if (!(iou >= 0 && iou <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "iou_threshold ", iou, " is outside (0, 1] (0 means ", kDefaultIouThreshold, ")"));
  }
  if (r.max_detections() < 0 || r.max_detections() > kMaxDetectionsLimit) {
    return absl::InvalidArgumentError(absl::StrCat("max_detections ", r.max_detections(),
                                                   " is outside 1..", kMaxDetectionsLimit,
                                                   " (0 means ", kDefaultMaxDetections, ")"));
  }
  const int classes = model.spec().num_classes;
  for (int32_t c : r.class_filter()) {
    if (c < 0 || c >= classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "class_filter id ", c, " is outside 0..", classes - 1, " for model ", model.spec().name));
    }
  }
  class_filter_.assign(r.class_filter().begin(), r.class_filter().end());
  decode_.score_threshold = score == 0 ? kDefaultScoreThreshold : score;
  decode_.class_filter = class_filter_;
  nms_.iou_threshold = iou == 0 ? kDefaultIouThreshold : iou;
  nms_.max_detections = r.max_detections() == 0 ? kDefaultMaxDetections : r.max_detections();
  geometry_.resize(r.images_size());
  detections_.resize(r.images_size());
  return absl::OkStatus();
}

absl::StatusOr<std::span<const float>> DetectJob::InputInPlace(int index) {
  const int size = model_->spec().input_size;
  absl::StatusOr<std::span<const float>> values =
      CheckedFloatsInPlace(request_msg_->images(index), size);
  if (!values.ok()) {
    return absl::Status(values.status().code(),
                        absl::StrCat(values.status().message(), kFloatTensorNote));
  }
  if (!values->empty()) {  // the letterbox is the identity
    auto g = detect::ComputeLetterbox(size, size, size, size);
    if (!g.ok()) return g.status();
    geometry_[index] = *g;
  }
  return values;
}

absl::Status DetectJob::PreprocessImage(int index, std::span<float> out) {
  const repository::ModelSpec& spec = model_->spec();
  detect::LetterboxNormalize norm;
  norm.mean = spec.mean;
  norm.stddev = spec.stddev;
  return PreprocessForDetect(request_msg_->images(index), spec.input_size, norm, options_.limits,
                             out, &geometry_[index]);
}

absl::Status DetectJob::PostprocessImage(int index) {
  thread_local detect::PostprocessScratch scratch;
  const repository::ModelSpec& spec = model_->spec();
  detect::YoloOutputView view;
  view.data = items_[index].output;
  view.num_classes = spec.num_classes;
  view.num_anchors = spec.num_anchors;
  absl::Status s = detect::PostprocessYoloOutput(view, geometry_[index], decode_, nms_, &scratch,
                                                 &detections_[index]);
  if (!s.ok()) {
    // The request was valid: a model producing non-finite boxes is the server's problem.
    return absl::InternalError(absl::StrCat("model ", spec.name, " output: ", s.message()));
  }
  return absl::OkStatus();
}

void DetectJob::AnswerError(const absl::Status& status) {
  v1::DetectResponse response;
  response.set_request_id(request_msg_->request_id());
  Completion done = std::move(done_);
  done(status, std::move(response));
}

void DetectJob::AnswerOk(int64_t now) {
  const repository::ModelSpec& spec = model_->spec();
  v1::DetectResponse response;
  response.set_request_id(request_msg_->request_id());
  FillServedBy(response.mutable_served_by());
  v1::Timing* total = response.mutable_timing();
  for (int i = 0; i < num_items_; ++i) {
    v1::ImageDetections* result = response.add_results();
    result->set_image_width(geometry_[i].src_width);
    result->set_image_height(geometry_[i].src_height);
    for (const detect::Detection& d : detections_[i]) {
      v1::Detection* out = result->add_detections();
      out->mutable_box()->set_x1(d.box.x1);
      out->mutable_box()->set_y1(d.box.y1);
      out->mutable_box()->set_x2(d.box.x2);
      out->mutable_box()->set_y2(d.box.y2);
      out->set_class_id(d.class_id);
      out->set_label(spec.labels[d.class_id]);
      out->set_score(d.score);
    }
    FillTiming(i, now, result->mutable_timing(), total);
  }
  Completion done = std::move(done_);
  done(absl::OkStatus(), std::move(response));
}

}  // namespace visionserve::api
