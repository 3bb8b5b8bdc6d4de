#pragma once

// Decoding one image's YOLOv8-convention detector output into NMS candidates.
//
// The convention: a [4 + C, A] float32 block per image (the model's [N, 4 + C, A] output at
// image n), row-major: rows 0..3 are cx, cy, w, h of each anchor in model-input pixels, rows
// 4..4+C-1 the C class scores, already sigmoid-ed. For YOLOv8 at 640 x 640, C = 80 and
// A = 8400 (80^2 + 40^2 + 20^2).
//
// What DecodeYoloOutput keeps, as Ultralytics' non_max_suppression does before NMS:
// - single-label (default): per anchor the best class (first on ties) and its score; the
//   anchor is a candidate iff that score > score_threshold;
// - multi_label: every (anchor, class) whose score > score_threshold, anchor-major then class
//   ascending (the order of torch.where on [A, C]);
// - class_filter (optional): candidates whose class is not listed are then dropped. As in
//   Ultralytics, the filter applies after the best class is chosen, so with a filter the result
//   is exactly the unfiltered result minus the other classes (an anchor whose best class is
//   filtered out does not fall back to its second best);
// - if more than max_candidates remain, the max_candidates best-scoring ones are kept, in
//   descending score order (torch argsort order, as Ultralytics' max_nms cut); otherwise they
//   stay in anchor order;
// - boxes become x1 = cx - w / 2, y1 = cy - h / 2, x2 = cx + w / 2, y2 = cy + h / 2 (float32, as
//   Ultralytics' xywh2xyxy), still in model-input pixels (see letterbox.h to map them back).
// NaN class scores never win and never pass the threshold (decode_kernels.h); an anchor that
// becomes a candidate must have a finite box and score, else the output is rejected.
//
// Thread safety: reentrant; a DecodeScratch and a Candidates are used by one call at a time.

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "server/detect/decode_kernels.h"
#include "server/detect/isa.h"

namespace visionserve::detect {

// One image's output block; data.size() must be (4 + num_classes) * num_anchors.
struct YoloOutputView {
  std::span<const float> data;
  int num_classes = 80;
  int64_t num_anchors = 8400;
};

struct DecodeOptions {
  float score_threshold = 0.25f;               // keep scores > this; finite, in [0, 1]
  bool multi_label = false;                    // every class above threshold, not just the best
  std::span<const int32_t> class_filter = {};  // allowed class ids in [0, C); empty: all classes
  int64_t max_candidates = 30000;              // cap before NMS (Ultralytics max_nms); >= 1
};

// The decoded candidates, reusable across calls (capacity is kept). Parallel arrays.
struct Candidates {
  std::vector<float> boxes;        // 4 per candidate: x1, y1, x2, y2 in model-input pixels
  std::vector<float> scores;       // class score
  std::vector<int32_t> class_ids;  // class id in [0, C)
  std::vector<int32_t> anchors;    // anchor index in [0, A), e.g. for masks or keypoints

  size_t size() const { return scores.size(); }
  void clear();
};

// Working memory and kernel choice. Reuse one per thread: once it and the Candidates have seen
// the largest output, a call allocates nothing.
class DecodeScratch {
 public:
  explicit DecodeScratch(Isa isa = DefaultIsa());  // clamped to what the CPU supports

  Isa isa() const { return isa_; }

 private:
  friend absl::Status DecodeYoloOutput(const YoloOutputView& output, const DecodeOptions& options,
                                       DecodeScratch* scratch, Candidates* candidates);
  struct ScoreIndex {
    float score;
    int32_t index;
  };

  Isa isa_;
  ClassArgmaxFn argmax_;
  std::vector<int32_t> anchor_;
  std::vector<float> score_;
  std::vector<int32_t> class_;
  std::vector<uint8_t> allowed_;
  std::vector<ScoreIndex> order_;
  Candidates unsorted_;
};

// Replaces *candidates with the candidates of `output` (see the top of this file).
// Errors (INVALID_ARGUMENT, *candidates unspecified): num_classes < 1, num_anchors < 0 or
// >= 2^31, data.size() != (4 + num_classes) * num_anchors, score_threshold NaN or outside
// [0, 1], max_candidates < 1, a class_filter id outside [0, num_classes), a candidate whose box
// or score is not finite (the message names the anchor).
absl::Status DecodeYoloOutput(const YoloOutputView& output, const DecodeOptions& options,
                              DecodeScratch* scratch, Candidates* candidates);

}  // namespace visionserve::detect
