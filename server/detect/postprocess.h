#pragma once

// One image's detector output to detections in original-image pixels: DecodeYoloOutput, then
// BatchedNms, then MapToOriginal + ClipToImage for the kept boxes. What the Detect RPC calls.
// One deviation from Ultralytics: candidates whose box lies entirely in the letterbox padding
// (empty once mapped and clipped to the image) are dropped before NMS, so every detection has a
// positive area and such boxes never take a max_detections slot.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "server/detect/decode.h"
#include "server/detect/isa.h"
#include "server/detect/letterbox.h"
#include "server/detect/nms.h"

namespace visionserve::detect {

struct Detection {
  Box box;  // x1, y1, x2, y2 in original-image pixels, clipped to the image
  float score = 0;
  int32_t class_id = 0;
};

// Everything a call needs, reusable: one per thread. Warmed up with the largest output, a call
// allocates nothing (given `detections` has capacity for max_detections).
class PostprocessScratch {
 public:
  explicit PostprocessScratch(Isa isa = DefaultIsa()) : decode_(isa), nms_(isa) {}

 private:
  friend absl::Status PostprocessYoloOutput(const YoloOutputView&, const LetterboxGeometry&,
                                            const DecodeOptions&, const NmsOptions&,
                                            PostprocessScratch*, std::vector<Detection>*);
  DecodeScratch decode_;
  NmsScratch nms_;
  Candidates candidates_;
  std::vector<int32_t> keep_;
};

// Replaces *detections with the detections of `output` (a model input letterboxed by
// `geometry`), in descending score order with torchvision's tie order, at most
// nms.max_detections. Errors: those of DecodeYoloOutput and BatchedNms (INVALID_ARGUMENT);
// *detections is unspecified after an error.
absl::Status PostprocessYoloOutput(const YoloOutputView& output, const LetterboxGeometry& geometry,
                                   const DecodeOptions& decode, const NmsOptions& nms,
                                   PostprocessScratch* scratch, std::vector<Detection>* detections);

}  // namespace visionserve::detect
