#include "server/detect/postprocess.h"

namespace visionserve::detect {

absl::Status PostprocessYoloOutput(const YoloOutputView& output, const LetterboxGeometry& geometry,
                                   const DecodeOptions& decode, const NmsOptions& nms,
                                   PostprocessScratch* s, std::vector<Detection>* detections) {
  detections->clear();
  if (absl::Status st = DecodeYoloOutput(output, decode, &s->decode_, &s->candidates_); !st.ok()) {
    return st;
  }
  const Candidates& c = s->candidates_;
  if (absl::Status st = BatchedNms({c.boxes, c.scores, c.class_ids}, nms, &s->nms_, &s->keep_);
      !st.ok()) {
    return st;
  }
  detections->reserve(s->keep_.size());
  for (int32_t i : s->keep_) {
    const Box input{c.boxes[4 * i], c.boxes[4 * i + 1], c.boxes[4 * i + 2], c.boxes[4 * i + 3]};
    detections->push_back(
        {ClipToImage(geometry, MapToOriginal(geometry, input)), c.scores[i], c.class_ids[i]});
  }
  return absl::OkStatus();
}

}  // namespace visionserve::detect
