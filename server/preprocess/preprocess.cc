#include "server/preprocess/preprocess.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/preprocess/checks.h"
#include "server/preprocess/half.h"
#include "server/preprocess/resample.h"

namespace visionserve::preprocess {
namespace {

absl::Status ValidateSpec(const ClassifySpec& spec) {
  if (spec.resize_size < 1 || spec.resize_size > kMaxSpecSize || spec.crop_size < 1 ||
      spec.crop_size > kMaxSpecSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("preprocessing spec resize_size=", spec.resize_size,
                     " crop_size=", spec.crop_size, " is out of range [1, ", kMaxSpecSize, "]"));
  }
  if (spec.interpolation != Interpolation::kBilinear &&
      spec.interpolation != Interpolation::kBicubic) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown interpolation ", static_cast<int>(spec.interpolation)));
  }
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(spec.mean[c]) || !std::isfinite(spec.stddev[c]) || spec.stddev[c] == 0) {
      return absl::InvalidArgumentError(absl::StrCat("preprocessing spec channel ", c, " has mean ",
                                                     spec.mean[c], " stddev ", spec.stddev[c],
                                                     "; need finite values, stddev != 0"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckOutputSize(size_t out_size, int crop_size) {
  const size_t needed = static_cast<size_t>(crop_size) * crop_size * 3;
  if (out_size != needed) {
    return absl::InvalidArgumentError(absl::StrCat("output buffer holds ", out_size,
                                                   " floats; crop_size ", crop_size, " needs ",
                                                   needed, " (crop x crop x 3)"));
  }
  return absl::OkStatus();
}

// Resize + center crop of a validated view into dst (crop * crop * 3 bytes).
absl::Status ResizeCropInto(RgbView src, const ClassifySpec& spec, uint8_t* dst) {
  absl::StatusOr<Size2> resized = ResizedSize(src.width, src.height, spec.resize_size);
  if (!resized.ok()) return resized.status();
  const int crop = spec.crop_size;
  ResampleWindow(src, resized->width, resized->height, spec.interpolation, spec.antialias,
                 CenterCropOffset(resized->width, crop), CenterCropOffset(resized->height, crop),
                 crop, crop, dst);
  return absl::OkStatus();
}

// torchvision ToTensor + Normalize in float32: (float(x) / 255 - mean) / std, as a table.
void Normalize(const uint8_t* src, size_t pixels, const ClassifySpec& spec, float* out) {
  float table[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      table[c][v] = (static_cast<float>(v) / 255.0f - spec.mean[c]) / spec.stddev[c];
    }
  }
  for (size_t p = 0; p < pixels; ++p) {
    out[3 * p + 0] = table[0][src[3 * p + 0]];
    out[3 * p + 1] = table[1][src[3 * p + 1]];
    out[3 * p + 2] = table[2][src[3 * p + 2]];
  }
}

absl::Status PreprocessView(RgbView src, const ClassifySpec& spec, std::span<float> out) {
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  if (absl::Status s = CheckOutputSize(out.size(), spec.crop_size); !s.ok()) return s;
  const size_t pixels = static_cast<size_t>(spec.crop_size) * spec.crop_size;
  std::vector<uint8_t> crop(pixels * 3);
  if (absl::Status s = ResizeCropInto(src, spec, crop.data()); !s.ok()) return s;
  Normalize(crop.data(), pixels, spec, out.data());
  return absl::OkStatus();
}

absl::Status CheckImage(const Image& img) {
  if (img.width <= 0 || img.height <= 0 ||
      img.rgb.size() != static_cast<size_t>(img.width) * img.height * 3) {
    return absl::InvalidArgumentError(absl::StrCat("malformed image: ", img.width, "x", img.height,
                                                   " with ", img.rgb.size(), " bytes of RGB data"));
  }
  return absl::OkStatus();
}

const char* NonFiniteName(float v) {
  if (std::isnan(v)) return "NaN";
  return v > 0 ? "+Inf" : "-Inf";
}

// An already-preprocessed tensor: shape {crop_size, crop_size, 3} and that many values.
absl::Status CheckPreprocessedShape(std::span<const int64_t> shape, int crop_size, size_t values) {
  if (crop_size < 1 || crop_size > kMaxSpecSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("crop_size ", crop_size, " is out of range [1, ", kMaxSpecSize, "]"));
  }
  if (shape.size() != 3 || shape[0] != crop_size || shape[1] != crop_size || shape[2] != 3) {
    return absl::InvalidArgumentError(absl::StrCat("float tensor has shape [",
                                                   absl::StrJoin(shape, ", "), "]; expected [",
                                                   crop_size, ", ", crop_size, ", 3] (HWC)"));
  }
  const size_t n = static_cast<size_t>(crop_size) * crop_size * 3;
  if (values != n) {
    return absl::InvalidArgumentError(absl::StrCat("float tensor of shape [", crop_size, ", ",
                                                   crop_size, ", 3] needs ", n, " values, got ",
                                                   values));
  }
  return absl::OkStatus();
}

absl::Status NonFiniteElement(size_t i, int crop_size, float value) {
  const size_t c = i % 3, w = (i / 3) % crop_size, h = i / 3 / crop_size;
  return absl::InvalidArgumentError(absl::StrCat("float tensor element ", i, " (h=", h, ", w=", w,
                                                 ", c=", c, ") is ", NonFiniteName(value)));
}

}  // namespace

absl::Status CheckDimensions(std::string_view what, int64_t width, int64_t height,
                             const Limits& limits) {
  const std::string name(what);
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " has invalid dimensions ", width, "x", height));
  }
  if (width > limits.max_side || height > limits.max_side) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is ", width, "x", height,
                                                   "; each side may be at most ", limits.max_side,
                                                   " pixels"));
  }
  // Both factors are <= max_side (an int) here, so the product fits in int64.
  if (width * height > limits.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is ", width, "x", height, " = ",
                                                   width * height, " pixels, over the limit of ",
                                                   limits.max_pixels, " pixels"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Image> ResizeAndCenterCrop(const Image& img, const ClassifySpec& spec) {
  if (absl::Status s = CheckImage(img); !s.ok()) return s;
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  Image out;
  out.width = out.height = spec.crop_size;
  out.rgb.resize(static_cast<size_t>(spec.crop_size) * spec.crop_size * 3);
  if (absl::Status s =
          ResizeCropInto(RgbView{img.rgb.data(), img.width, img.height}, spec, out.rgb.data());
      !s.ok()) {
    return s;
  }
  return out;
}

absl::Status Preprocess(const Image& img, const ClassifySpec& spec, std::span<float> out) {
  if (absl::Status s = CheckImage(img); !s.ok()) return s;
  return PreprocessView(RgbView{img.rgb.data(), img.width, img.height}, spec, out);
}

absl::Status PreprocessRawRgb(std::span<const uint8_t> hwc, int height, int width,
                              const ClassifySpec& spec, const Limits& limits,
                              std::span<float> out) {
  if (height <= 0 || width <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw RGB tensor has invalid shape [", height, ", ", width, ", 3]"));
  }
  if (absl::Status s = CheckDimensions("raw RGB tensor", width, height, limits); !s.ok()) {
    return s;
  }
  const size_t needed = static_cast<size_t>(height) * width * 3;
  if (hwc.size() != needed) {
    return absl::InvalidArgumentError(absl::StrCat("raw RGB tensor of shape [", height, ", ", width,
                                                   ", 3] needs ", needed, " bytes, got ",
                                                   hwc.size()));
  }
  return PreprocessView(RgbView{hwc.data(), width, height}, spec, out);
}

absl::Status CheckPreprocessedFloat(std::span<const float> values, std::span<const int64_t> shape,
                                    int crop_size, std::span<float> out) {
  if (absl::Status s = ValidatePreprocessedFloat(values, shape, crop_size); !s.ok()) return s;
  if (absl::Status s = CheckOutputSize(out.size(), crop_size); !s.ok()) return s;
  std::memcpy(out.data(), values.data(), values.size() * sizeof(float));
  return absl::OkStatus();
}

absl::Status CheckPreprocessedHalf(std::span<const uint8_t> bytes, std::span<const int64_t> shape,
                                   int crop_size, std::span<float> out) {
  if (bytes.size() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("FLOAT16 tensor data has ", bytes.size(), " bytes, not a multiple of 2"));
  }
  const size_t n = bytes.size() / 2;
  if (absl::Status s = CheckPreprocessedShape(shape, crop_size, n); !s.ok()) return s;
  if (absl::Status s = CheckOutputSize(out.size(), crop_size); !s.ok()) return s;
  if (const int64_t bad = HalfToFloat(bytes.data(), n, out.data()); bad >= 0) {
    const size_t i = static_cast<size_t>(bad);
    return NonFiniteElement(i, crop_size, HalfBitsToFloat(HalfBitsAt(bytes.data(), i)));
  }
  return absl::OkStatus();
}

absl::Status ValidatePreprocessedFloat(std::span<const float> values,
                                       std::span<const int64_t> shape, int crop_size) {
  if (absl::Status s = CheckPreprocessedShape(shape, crop_size, values.size()); !s.ok()) return s;
  const size_t n = values.size();
  // Exponent bits all ones is Inf or NaN: an integer OR-reduction the compiler vectorises (a
  // 600 KB tensor in ~10 µs); the slow loop below only runs to name the first bad element.
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &values[i], sizeof(bits));
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  for (size_t i = 0; bad != 0 && i < n; ++i) {
    if (!std::isfinite(values[i])) return NonFiniteElement(i, crop_size, values[i]);
  }
  return absl::OkStatus();
}

absl::Status DecodeAndPreprocess(std::span<const uint8_t> bytes, const ClassifySpec& spec,
                                 const Limits& limits, std::span<float> out) {
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  if (absl::Status s = CheckOutputSize(out.size(), spec.crop_size); !s.ok()) return s;
  absl::StatusOr<Image> img = Decode(bytes, limits, spec.resize_size);
  if (!img.ok()) return img.status();
  return Preprocess(*img, spec, out);
}

}  // namespace visionserve::preprocess
