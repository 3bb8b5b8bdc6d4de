#include "server/detect/postprocess.h"

namespace visionserve::detect {

absl::Status PostprocessYoloOutput(const YoloOutputView& output, const LetterboxGeometry& geometry,
                                   const DecodeOptions& decode, const NmsOptions& nms,
                                   PostprocessScratch* s, std::vector<Detection>* detections) {
  detections->clear();
  if (absl::Status st = DecodeYoloOutput(output, decode, &s->decode_, &s->candidates_); !st.ok()) {
    return st;
  }
  // Candidates entirely in the letterbox padding are empty once clipped to the image: drop them
  // before NMS, so they neither take a max_detections slot nor suppress anything.
  Candidates& c = s->candidates_;
  size_t kept = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    const Box input{c.boxes[4 * i], c.boxes[4 * i + 1], c.boxes[4 * i + 2], c.boxes[4 * i + 3]};
    const Box b = ClipToImage(geometry, MapToOriginal(geometry, input));
    if (!(b.x2 > b.x1 && b.y2 > b.y1)) continue;
    if (kept != i) {
      for (int k = 0; k < 4; ++k) c.boxes[4 * kept + k] = c.boxes[4 * i + k];
      c.scores[kept] = c.scores[i];
      c.class_ids[kept] = c.class_ids[i];
      c.anchors[kept] = c.anchors[i];
    }
    ++kept;
  }
  c.boxes.resize(4 * kept);
  c.scores.resize(kept);
  c.class_ids.resize(kept);
  c.anchors.resize(kept);
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
