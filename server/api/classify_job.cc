#include "server/api/classify_job.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"

namespace visionserve::api {

std::span<const float> FloatsInPlace(const v1::RawTensor& t) {
  const std::string& d = t.data();
  if (d.size() % sizeof(float) != 0 ||
      reinterpret_cast<uintptr_t>(d.data()) % alignof(float) != 0) {
    return {};
  }
  return std::span<const float>(reinterpret_cast<const float*>(d.data()), d.size() / sizeof(float));
}

absl::Status PreprocessForClassify(const v1::Image& image, const preprocess::ClassifySpec& spec,
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
        if (absl::Status s = CheckRgbTensor(t, limits); !s.ok()) return s;
        return preprocess::PreprocessRawRgb(
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(d.data()), d.size()),
            static_cast<int>(t.shape(0)), static_cast<int>(t.shape(1)), spec, limits, out);
      }
      if (t.dtype() == v1::RawTensor::FLOAT32 || t.dtype() == v1::RawTensor::FLOAT16) {
        return CheckFloatTensorInto(t, spec.crop_size, out);
      }
      return absl::InvalidArgumentError(kTensorDtypes);
    }
    case v1::Image::DATA_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("image has neither encoded bytes nor a tensor");
}

void ClassifyJob::Start(metrics::Rpc rpc, const v1::ClassifyRequest& request, int64_t deadline_us,
                        std::shared_ptr<std::atomic<bool>> cancelled,
                        const repository::ModelRepository* models, engine::ThreadPool* pool,
                        const JobOptions& options, Completion done) {
  std::shared_ptr<ClassifyJob> job(new ClassifyJob(rpc, request, deadline_us, std::move(cancelled),
                                                   pool, options, std::move(done)));
  job->Begin(models);
}

ClassifyJob::ClassifyJob(metrics::Rpc rpc, const v1::ClassifyRequest& request, int64_t deadline_us,
                         std::shared_ptr<std::atomic<bool>> cancelled, engine::ThreadPool* pool,
                         const JobOptions& options, Completion done)
    : InferenceJob(rpc, repository::ModelTask::kClassify, RequestView::Of(request), deadline_us,
                   std::move(cancelled), pool, options),
      request_msg_(&request),
      done_(std::move(done)) {}

absl::Status ClassifyJob::ValidateFor(const repository::ServedModel& model) {
  const int classes = model.spec().num_classes;
  const int top_k = request_msg_->top_k();
  if (top_k < 0 || top_k > classes) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k ", top_k, " is outside 1..", classes, " (0 means 5)"));
  }
  top_k_ = top_k == 0 ? std::min(5, classes) : top_k;
  return absl::OkStatus();
}

absl::Status CheckFloatTensorInto(const v1::RawTensor& t, int size, std::span<float> out) {
  const std::string& d = t.data();
  const std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
  if (t.dtype() == v1::RawTensor::FLOAT16) {
    return preprocess::CheckPreprocessedHalf(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(d.data()), d.size()), shape, size,
        out);
  }
  if (d.size() % sizeof(float) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("FLOAT32 tensor data has ", d.size(), " bytes, not a multiple of 4"));
  }
  if (const std::span<const float> in_place = FloatsInPlace(t); !in_place.empty()) {
    return preprocess::CheckPreprocessedFloat(in_place, shape, size, out);
  }
  std::vector<float> values(d.size() / sizeof(float));
  std::memcpy(values.data(), d.data(), d.size());
  return preprocess::CheckPreprocessedFloat(values, shape, size, out);
}

absl::StatusOr<std::span<const float>> CheckedFloatsInPlace(const v1::Image& image, int size) {
  if (!image.has_tensor() || image.tensor().dtype() != v1::RawTensor::FLOAT32) {
    return std::span<const float>();
  }
  const std::span<const float> values = FloatsInPlace(image.tensor());
  if (values.empty()) return values;  // unaligned or malformed: the copying path checks it
  const std::vector<int64_t> shape(image.tensor().shape().begin(), image.tensor().shape().end());
  if (absl::Status s = preprocess::ValidatePreprocessedFloat(values, shape, size); !s.ok()) {
    return s;
  }
  return values;
}

absl::StatusOr<std::span<const float>> ClassifyJob::InputInPlace(int index) {
  return CheckedFloatsInPlace(request_msg_->images(index), model_->spec().input_size);
}

absl::Status ClassifyJob::PreprocessImage(int index, std::span<float> out) {
  return PreprocessForClassify(request_msg_->images(index), model_->preprocess_spec(),
                               options_.limits, out);
}

void ClassifyJob::AnswerError(const absl::Status& status) {
  v1::ClassifyResponse response;
  response.set_request_id(request_msg_->request_id());
  Completion done = std::move(done_);
  done(status, std::move(response));
}

void ClassifyJob::AnswerOk(int64_t now) {
  const repository::ModelSpec& spec = model_->spec();
  v1::ClassifyResponse response;
  response.set_request_id(request_msg_->request_id());
  FillServedBy(response.mutable_served_by());
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
    FillTiming(i, now, result->mutable_timing(), total);
  }
  Completion done = std::move(done_);
  done(absl::OkStatus(), std::move(response));
}

}  // namespace visionserve::api
