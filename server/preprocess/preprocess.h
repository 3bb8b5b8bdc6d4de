#pragma once

// Decoding and preprocessing for image-classification requests.
//
// Contract: every function here is thread-safe and reentrant (no shared mutable state; each call
// owns its decoder handles and scratch), never aborts on user input, and reports bad input as
// INVALID_ARGUMENT with a message that names the offending numbers. Nothing here logs.
//
// Parity with torchvision's PIL path. For an RGB image already in memory, ResizeAndCenterCrop
// reproduces `CenterCrop(crop)(Resize(resize, interpolation)(pil_image))` (torchvision 0.14,
// Pillow 9.4) bit for bit: same output sizes and crop offsets, same filter taps, the same 22-bit
// fixed-point arithmetic and the same 8-bit intermediate between the horizontal and the
// vertical pass. Measured tolerance against Pillow 9.4: 0 (exact) on every tested case,
// bilinear and bicubic, up- and downscaling, odd sizes and extreme aspect ratios
// (tests/server/preprocess/pil_parity_test.cc, reference tools/pil_reference.py).
// Preprocess then matches ToTensor + Normalize exactly in float32: ((float)x / 255 - mean) / std.
//
// Decode(bytes, limits, 0) matches `PIL.Image.open(f).convert("RGB")` exactly for PNG and for
// JPEG (same libjpeg-turbo, accurate IDCT, fancy upsampling). Deviations from PIL, on purpose:
// - min_short_side > 0 decodes JPEGs at a reduced DCT scale (like PIL's Image.draft(), which
//   torchvision does not call), so results then differ slightly from a full-size decode.
// - EXIF orientation is ignored, as PIL's Image.open and torchvision's loaders ignore it.
// - A PNG palette index past the end of PLTE is rejected (PIL would paint it black).

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace visionserve::preprocess {

enum class Interpolation { kBilinear, kBicubic };

// What a model's torchvision weights expect: Resize(resize_size, interpolation) ->
// CenterCrop(crop_size) -> ToTensor -> Normalize(mean, stddev).
struct ClassifySpec {
  int resize_size = 256;  // shorter side resized to this, longer side = int(resize * long / short)
  int crop_size = 224;    // then a centered crop_size x crop_size window (zero-padded if larger)
  Interpolation interpolation = Interpolation::kBilinear;
  // true: PIL behaviour, the filter is widened by the scale factor when shrinking.
  // false: the filter keeps its unit support (aliasing, cheaper); no parity claim.
  bool antialias = true;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> stddev{0.229f, 0.224f, 0.225f};
};

// Largest resize_size / crop_size a ClassifySpec may ask for.
inline constexpr int kMaxSpecSize = 8192;

// Caps applied to untrusted input before any large allocation.
struct Limits {
  int64_t max_encoded_bytes = 64 << 20;  // compressed JPEG/PNG payload
  int64_t max_pixels = 64'000'000;       // width * height, checked on the file header
  int max_side = 32768;                  // each of width and height
};

// HWC RGB, 8 bits per channel, tightly packed: rgb.size() == width * height * 3.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
};

enum class Format { kUnknown, kJpeg, kPng };

// Looks only at the magic bytes (JPEG: FF D8 FF; PNG: the 8-byte signature).
Format SniffFormat(std::span<const uint8_t> bytes);

// Decodes a JPEG (libjpeg-turbo's TurboJPEG API) or PNG (libspng) to RGB8.
// - PNG: grey 1/2/4/8/16-bit, grey+alpha, RGB 8/16, RGBA 8/16, palette 1/2/4/8-bit, interlaced.
//   Alpha and tRNS are ignored, not composited (as PIL's .convert("RGB")). 16-bit RGB, RGBA and
//   grey+alpha keep the high byte, as PIL. 16-bit grey saturates: min(value, 255), because PIL
//   opens it as mode "I" and I->RGB clips; a 16-bit grey photo therefore comes out mostly white,
//   exactly as it does for a torchvision model fed through PIL.
// - JPEG: grey, YCbCr (any subsampling), baseline, progressive, arithmetic; CMYK/YCCK converted
//   as PIL does (Adobe inverted polarity, no colour management).
// - min_short_side > 0: a JPEG is decoded at the smallest DCT scale (1/8 .. 1/1) whose shorter
//   side is still >= min_short_side; a 4000x3000 photo with min_short_side 256 decodes at 1/8 to
//   500x375. PNGs always decode at full size.
// Errors, all INVALID_ARGUMENT: empty input, more than limits.max_encoded_bytes, unknown format
// (message names the accepted formats), header dimensions that are zero or exceed
// limits.max_side / limits.max_pixels (checked on the full-size header before any pixel buffer
// exists, also when DCT scaling would decode smaller: libjpeg still buffers full-size
// coefficients for progressive files), truncated or corrupt data ("... truncated or corrupt
// ..."). JPEGs that libjpeg decodes with a benign warning (junk before a marker, a bad Huffman
// code) are accepted, as Pillow accepts them; running out of data is not. RESOURCE_EXHAUSTED
// only if a decoder cannot be created or memory runs out.
absl::StatusOr<Image> Decode(std::span<const uint8_t> bytes, const Limits& limits,
                             int min_short_side = 0);

// The uint8 stage of Preprocess: torchvision Resize(spec.resize_size) then CenterCrop(crop_size)
// on `img`, returning a crop_size x crop_size image. Only the pixels inside the crop are computed.
// Errors: INVALID_ARGUMENT for a malformed image (dims <= 0, rgb.size() != w*h*3) or spec.
absl::StatusOr<Image> ResizeAndCenterCrop(const Image& img, const ClassifySpec& spec);

// Resize -> center crop -> normalize ((x / 255 - mean) / stddev) into `out`, which must hold
// exactly crop_size * crop_size * 3 floats: HWC RGB, i.e. NHWC for one image.
absl::Status Preprocess(const Image& img, const ClassifySpec& spec, std::span<float> out);

// Raw uint8 HWC RGB tensor input: checks height, width > 0, within `limits`, and
// hwc.size() == height * width * 3, then does what Preprocess does (no copy of the input).
absl::Status PreprocessRawRgb(std::span<const uint8_t> hwc, int height, int width,
                              const ClassifySpec& spec, const Limits& limits, std::span<float> out);

// Already-preprocessed float32 tensor: shape must be exactly {crop_size, crop_size, 3} (HWC,
// no batch dimension), values.size() and out.size() must equal its element count, and every
// value must be finite (the first NaN/Inf is reported by flat index and (h, w, c)).
// Copies into `out` on success; `out` is unspecified on error.
// ValidatePreprocessedFloat is the same check without the copy (for callers that use `values`
// in place).
absl::Status ValidatePreprocessedFloat(std::span<const float> values,
                                       std::span<const int64_t> shape, int crop_size);
absl::Status CheckPreprocessedFloat(std::span<const float> values, std::span<const int64_t> shape,
                                    int crop_size, std::span<float> out);
// The same for a float16 tensor (IEEE binary16, little-endian, `bytes` of any alignment):
// checked, then converted into `out` (exact: every half is a float).
absl::Status CheckPreprocessedHalf(std::span<const uint8_t> bytes, std::span<const int64_t> shape,
                                   int crop_size, std::span<float> out);

// Decode(bytes, limits, spec.resize_size) then Preprocess: the request path for JPEG/PNG
// payloads. Uses DCT-scaled JPEG decoding (see Decode); call Decode(bytes, limits, 0) and
// Preprocess yourself for bit-exact PIL parity on large JPEGs.
absl::Status DecodeAndPreprocess(std::span<const uint8_t> bytes, const ClassifySpec& spec,
                                 const Limits& limits, std::span<float> out);

}  // namespace visionserve::preprocess
