#pragma once

// Pillow-compatible separable resampling, restricted to an output window. Internal to
// server/preprocess (exposed for tests); callers use preprocess.h.

#include <cstdint>

#include "server/preprocess/preprocess.h"

namespace visionserve::preprocess {

// A borrowed HWC RGB8 image, tightly packed (row stride = width * 3).
struct RgbView {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
};

struct Size2 {
  int width = 0;
  int height = 0;
};

// torchvision 0.14 `_compute_resized_output_size` for Resize(int): shorter side -> shorter_side,
// longer side -> int(shorter_side * long / short) (truncated). INVALID_ARGUMENT when the longer
// side would not fit in an int.
absl::StatusOr<Size2> ResizedSize(int width, int height, int shorter_side);

// torchvision `center_crop` offset along one axis: int(round((size - crop) / 2.0)) with Python's
// round-half-to-even; when crop > size torchvision zero-pads first, which is a negative offset
// of -((crop - size) / 2).
int CenterCropOffset(int size, int crop);

// Writes the window [left, left + out_w) x [top, top + out_h) of `src` resized to
// resized_w x resized_h, as Pillow 9.4's ImagingResample (8 bits per channel) computes it: filter
// support scaled by the shrink factor when `antialias`, per-output normalized taps, 22-bit
// fixed point, horizontal pass first into an 8-bit intermediate, then vertical. Window pixels
// outside the resized image are 0 (torchvision's zero padding). Axes whose size is unchanged are
// copied, as Pillow skips them. `dst` holds out_w * out_h * 3 bytes. Preconditions (checked by
// the callers in preprocess.cc): all sizes > 0 and src.data holds width * height * 3 bytes.
void ResampleWindow(RgbView src, int resized_w, int resized_h, Interpolation interpolation,
                    bool antialias, int left, int top, int out_w, int out_h, uint8_t* dst);

}  // namespace visionserve::preprocess
