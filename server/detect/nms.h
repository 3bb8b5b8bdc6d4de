#pragma once

// Class-aware non-maximum suppression with the results of torchvision.ops.batched_nms (0.14,
// CPU, float32): the same kept indices in the same order, ties included.
//
// What "the same" takes, and what BatchedNms therefore does (tests/detect/nms_parity_test.py
// checks it against torchvision on random and adversarial inputs):
// - torchvision's nms() sorts with scores.sort(stable=true, descending=true): equal scores are
//   visited in ascending index order.
// - batched_nms takes one of two paths by size, and they can differ through float rounding:
//   * n <= 1000 boxes (boxes.numel() <= 4000): the coordinate trick. Every box is shifted by
//     float(class) * (max coordinate + 1), all in float32, and a single NMS runs over all boxes;
//     output in greedy (score, then index) order. BatchedNms does exactly that arithmetic,
//     quirks included: shifted coordinates round (IoUs move slightly; huge ones overflow to inf
//     and then never suppress), and with negative coordinates boxes of different classes can
//     overlap after shifting and do suppress each other, as in torchvision.
//   * n > 1000: one NMS per class on the unshifted boxes, then the kept indices, in ascending
//     order, are sorted by score with torch's default sort, which is NOT stable on CPU
//     (std::sort on (score, index) pairs): equal scores come out in whatever order libstdc++'s
//     introsort leaves them. BatchedNms runs the same std::sort on the same sequence with the
//     same comparison, so its order of equal scores is torchvision's.
// - IoU and the suppression test are torchvision's (see nms_kernels.h): no "+1", float32,
//   suppressed iff IoU > iou_threshold (IoU exactly equal keeps the box), a zero-area box has
//   IoU 0 with everything and NaN (never suppresses) with another zero-area box; inverted boxes
//   (x2 < x1) are allowed and intersect nothing.
// - max_detections keeps the first max_detections of that output (as Ultralytics' keep[:max_det]).
//
// Cost: one O(n) radix sort of the scores (std::sort below 256 boxes), O(n * kept) IoU tests at
// most, fewer as suppressed boxes are compacted away after every kept box (the IoU test runs 16
// (AVX-512) or 8 (AVX2) candidates per step, chosen when the scratch is made), and on the
// per-class path an O(n log n) std::sort of the kept boxes only when equal scores reach the
// first max_detections (otherwise an O(n) selection). The n <= 1000 path stops as soon as
// max_detections boxes are kept. Measured (bench/server/nms_bench.cc, AVX-512): ~3 us for the
// ~180 candidates of a 640x640 YOLOv8 output at score > 0.25, ~0.5 ms with all 8400 anchors in.
//
// Thread safety: BatchedNms is reentrant; an NmsScratch is used by one call at a time.

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "server/detect/isa.h"
#include "server/detect/nms_kernels.h"

namespace visionserve::detect {

namespace internal {
struct ScoreIndex {
  float score;
  int32_t index;
};
}  // namespace internal

struct NmsInput {
  std::span<const float> boxes;        // n x 4: x1, y1, x2, y2 (any consistent pixel unit)
  std::span<const float> scores;       // n
  std::span<const int32_t> class_ids;  // n; any int32, boxes of different ids never interact
                                       // (except through the n <= 1000 quirk above)
};

struct NmsOptions {
  float iou_threshold = 0.7f;  // suppress when IoU > this; finite, in [0, 1]
  int max_detections = 300;    // at most this many indices returned; >= 1
};

// Working memory and the kernel choice of BatchedNms. Make one per thread (or per in-flight
// request) and reuse it: its buffers grow to the largest n seen and are kept, so once warmed up
// with the largest input a call allocates nothing (nor does it if `keep` has the capacity).
class NmsScratch {
 public:
  // `isa` is clamped to what the CPU supports.
  explicit NmsScratch(Isa isa = DefaultIsa());

  Isa isa() const { return isa_; }

 private:
  friend absl::Status BatchedNms(const NmsInput& input, const NmsOptions& options,
                                 NmsScratch* scratch, std::vector<int32_t>* keep);
  using ScoreIndex = internal::ScoreIndex;

  Isa isa_;
  NmsFilterFn filter_;
  std::vector<ScoreIndex> order_, sort_tmp_;
  std::vector<uint32_t> radix_hist_;
  std::vector<float> x1_, y1_, x2_, y2_, area_;
  std::vector<int32_t> id_;
  std::vector<int32_t> grouped_;      // indices grouped by class (n > 1000 path)
  std::vector<int32_t> class_start_;  // counting-sort buckets
  std::vector<uint8_t> kept_mask_;
};

// Replaces *keep with the indices (into the input) kept by class-aware NMS, in descending score
// order with torchvision's tie order, at most options.max_detections of them.
// Errors (INVALID_ARGUMENT, *keep unchanged): boxes.size() != 4 * scores.size(),
// class_ids.size() != scores.size(), more than 2^31 - 1 boxes, iou_threshold outside [0, 1] or
// NaN, max_detections < 1, a NaN or infinite score or coordinate (the message names the first
// one). Empty input returns OK with *keep empty.
absl::Status BatchedNms(const NmsInput& input, const NmsOptions& options, NmsScratch* scratch,
                        std::vector<int32_t>* keep);

// torchvision's switch between its two strategies: the coordinate trick for n <= this.
inline constexpr int64_t kCoordinateTrickMaxBoxes = 1000;

}  // namespace visionserve::detect
