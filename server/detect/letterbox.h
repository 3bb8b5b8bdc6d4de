#pragma once

// Letterbox geometry (keep aspect ratio, never crop, pad to the model input) and its exact
// inverse for boxes; the letterbox itself on an RGB8 image into normalized float NHWC.
//
// Geometry, as Ultralytics' LetterBox (center=True, auto=False, scaleFill=False) computes it:
//   r          = min(dst_w / src_w, dst_h / src_h)       (double; min(r, 1) if !scale_up)
//   resized_w  = round(src_w * r), resized_h = round(src_h * r)
//                Python round: half to even; clamped to [1, dst] (Ultralytics would make a
//                0-pixel side for aspect ratios beyond dst : 0.5, which cv2 rejects)
//   pad_w      = dst_w - resized_w, pad_left = pad_w / 2 rounded down, pad_right = the rest
//                (Ultralytics' round(dw/2 - 0.1) and round(dw/2 + 0.1): the odd pixel goes right;
//                 likewise top / bottom, the odd pixel at the bottom)
//
// Box mapping. The image content is resized by scale_x = resized_w / src_w horizontally and
// scale_y = resized_h / src_h vertically (these differ from r, and from each other, by the
// rounding of the resized size), then shifted by the padding. In continuous pixel-edge
// coordinates (a pixel i spans [i, i + 1)):
//   x_input = x_original * scale_x + pad_left,   y_input = y_original * scale_y + pad_top.
// MapToInput is that, MapToOriginal its exact inverse (computed in double). Ultralytics'
// scale_boxes divides by r on both axes instead, which is off by up to half a pixel at the far
// edge of the image; the mapping here is the one LetterboxImage actually applied.
// Clipping is Ultralytics' clip_boxes: x to [0, src_w], y to [0, src_h].
//
// LetterboxImage: bilinear resize with half-pixel centers and edge clamping (the sampling of
// cv2.resize INTER_LINEAR, which Ultralytics uses; no antialiasing when shrinking), computed in
// float and rounded to the nearest 8-bit level, as cv2's uint8 output is, then
// out = (level / 255 - mean) / stddev; pad pixels are level 114 (Ultralytics' gray), normalized
// the same way. With the defaults (mean 0, stddev 1) the output is in [0, 1], the YOLOv8
// convention. cv2 computes the blend in 11-bit fixed point, so individual values can differ
// from cv2 by one level; LetterboxImageRef is the plain per-pixel reference and
// LetterboxImage (separable, horizontal taps cached per source row) equals it bit for bit.

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace visionserve::detect {

// Largest source or destination side accepted.
inline constexpr int kMaxLetterboxSide = 32768;

struct LetterboxOptions {
  bool scale_up = true;  // Ultralytics' scaleup: false never enlarges (r = min(r, 1))
};

struct LetterboxGeometry {
  int src_width = 0, src_height = 0;          // original image
  int dst_width = 0, dst_height = 0;          // model input
  double scale = 1.0;                         // r, as above
  int resized_width = 0, resized_height = 0;  // the image inside the input
  int pad_left = 0, pad_top = 0, pad_right = 0, pad_bottom = 0;

  double scale_x() const { return static_cast<double>(resized_width) / src_width; }
  double scale_y() const { return static_cast<double>(resized_height) / src_height; }
};

// Errors: INVALID_ARGUMENT unless every side is in [1, kMaxLetterboxSide].
absl::StatusOr<LetterboxGeometry> ComputeLetterbox(int src_width, int src_height, int dst_width,
                                                   int dst_height,
                                                   const LetterboxOptions& options = {});

struct Box {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
};

// Original-image pixels -> model-input pixels (no clipping).
Box MapToInput(const LetterboxGeometry& g, const Box& original);
// Model-input pixels -> original-image pixels, the exact inverse of MapToInput (no clipping).
Box MapToOriginal(const LetterboxGeometry& g, const Box& input);
// x clamped to [0, src_width], y to [0, src_height]. A box entirely outside becomes degenerate
// (zero width or height) on the image border.
Box ClipToImage(const LetterboxGeometry& g, const Box& original);
// In place for n boxes stored as x1, y1, x2, y2 (boxes.size() must be a multiple of 4, else
// INVALID_ARGUMENT): MapToOriginal then ClipToImage.
absl::Status MapBoxesToOriginal(const LetterboxGeometry& g, std::span<float> boxes);

struct LetterboxNormalize {
  std::array<float, 3> mean{0.0f, 0.0f, 0.0f};    // in [0, 1] units, per RGB channel
  std::array<float, 3> stddev{1.0f, 1.0f, 1.0f};  // finite, non-zero
};

// Ultralytics' pad gray.
inline constexpr int kLetterboxPadLevel = 114;

// Tap tables and row buffers of LetterboxImage; reuse one per thread: once it has seen the
// largest geometry, LetterboxImage allocates nothing.
class LetterboxScratch {
 private:
  friend absl::Status LetterboxImage(std::span<const uint8_t>, const LetterboxGeometry&,
                                     const LetterboxNormalize&, LetterboxScratch*,
                                     std::span<float>);
  std::vector<int32_t> x0_, x1_;
  std::vector<float> wx0_, wx1_;
  std::vector<float> row_a_, row_b_;
};

// Letterboxes `rgb` (HWC RGB8, tightly packed, g.src_width x g.src_height) into `out`
// (g.dst_height x g.dst_width x 3 floats: NHWC for one image).
// Errors (INVALID_ARGUMENT): g not from ComputeLetterbox-valid sizes, rgb.size() or out.size()
// not as stated, a stddev that is zero or not finite, a mean that is not finite.
absl::Status LetterboxImage(std::span<const uint8_t> rgb, const LetterboxGeometry& g,
                            const LetterboxNormalize& norm, LetterboxScratch* scratch,
                            std::span<float> out);

// Plain reference: every output pixel computed on its own from the formulas above.
absl::Status LetterboxImageRef(std::span<const uint8_t> rgb, const LetterboxGeometry& g,
                               const LetterboxNormalize& norm, std::span<float> out);

}  // namespace visionserve::detect
