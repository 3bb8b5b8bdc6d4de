#include "server/preprocess/resample.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace visionserve::preprocess {
namespace {

// Pillow's 8-bit resampler: coefficients carry 22 fractional bits, leaving 8 bits for the
// sample and 2 for overshoot of filters with negative lobes. With normalized taps the
// accumulator stays below 255 * 1.3 * 2^22 < 2^31, so int32 never overflows.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int32_t kHalf = int32_t{1} << (kPrecisionBits - 1);
constexpr double kOne = static_cast<double>(int32_t{1} << kPrecisionBits);

// The filter kernels below keep Pillow's evaluation order so the doubles match bit for bit.
double TriangleWeight(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double CubicWeight(double x) {  // Keys cubic convolution with a = -0.5, as Pillow
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Filter {
  double (*weight)(double);
  double support;
};

Filter FilterFor(Interpolation interpolation) {
  return interpolation == Interpolation::kBicubic ? Filter{&CubicWeight, 2.0}
                                                  : Filter{&TriangleWeight, 1.0};
}

// Taps for a window of output indices along one axis. Only outputs inside the resized image
// own weights, so a window that is mostly zero padding costs nothing.
struct AxisTaps {
  int ksize = 0;                 // stride of `weights` per output index
  int weights_first = 0;         // window index of the first output that owns weights
  std::vector<int> first;        // first input index read by each output
  std::vector<int> count;        // taps per output; 0 for outputs in the zero padding
  std::vector<int32_t> weights;  // fixed point, kPrecisionBits fractional bits

  // Valid only when count[i] > 0.
  const int32_t* WeightsOf(int i) const {
    return &weights[static_cast<size_t>(i - weights_first) * ksize];
  }
};

AxisTaps ComputeTaps(int in_size, int out_size, int window_first, int window_size,
                     const Filter& filter, bool antialias) {
  AxisTaps taps;
  taps.first.assign(window_size, 0);
  taps.count.assign(window_size, 0);
  // Window indices [valid_begin, valid_end) fall inside the resized image.
  const int valid_begin = std::clamp(-window_first, 0, window_size);
  const int valid_end = static_cast<int>(
      std::clamp<int64_t>(int64_t{out_size} - window_first, valid_begin, window_size));
  taps.weights_first = valid_begin;
  if (in_size == out_size) {  // Pillow skips this pass; a single unit tap is the same copy
    taps.ksize = 1;
    taps.weights.assign(valid_end - valid_begin, int32_t{1} << kPrecisionBits);
    for (int i = valid_begin; i < valid_end; ++i) {
      taps.first[i] = window_first + i;
      taps.count[i] = 1;
    }
    return taps;
  }
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = (antialias && scale > 1.0) ? scale : 1.0;
  const double support = filter.support * filter_scale;
  const double inv_filter_scale = 1.0 / filter_scale;
  taps.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.weights.assign(static_cast<size_t>(valid_end - valid_begin) * taps.ksize, 0);
  std::vector<double> w(taps.ksize);
  for (int i = valid_begin; i < valid_end; ++i) {
    const int o = window_first + i;
    const double center = (o + 0.5) * scale;
    // Truncating casts, as Pillow ("round" by adding 0.5 to a value that is >= -0.5 here).
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    const int n = std::clamp(hi - lo, 0, taps.ksize);
    double sum = 0.0;
    for (int t = 0; t < n; ++t) {
      w[t] = filter.weight((t + lo - center + 0.5) * inv_filter_scale);
      sum += w[t];
    }
    int32_t* k = &taps.weights[static_cast<size_t>(i - valid_begin) * taps.ksize];
    for (int t = 0; t < n; ++t) {
      const double v = sum != 0.0 ? w[t] / sum : w[t];
      k[t] = static_cast<int32_t>(v < 0 ? -0.5 + v * kOne : 0.5 + v * kOne);
    }
    taps.first[i] = lo;
    taps.count[i] = n;
  }
  return taps;
}

inline uint8_t Clip8(int32_t acc) {
  return static_cast<uint8_t>(std::clamp(acc >> kPrecisionBits, 0, 255));
}

// Horizontal pass over `rows` rows of an RGB8 image (row stride src_stride bytes) into rows of
// taps.first.size() pixels.
void HorizontalPass(const uint8_t* src, size_t src_stride, int rows, const AxisTaps& taps,
                    uint8_t* dst) {
  const int out_w = static_cast<int>(taps.first.size());
  for (int r = 0; r < rows; ++r) {
    const uint8_t* in = src + r * src_stride;
    uint8_t* out = dst + static_cast<size_t>(r) * out_w * 3;
    for (int j = 0; j < out_w; ++j) {
      const int n = taps.count[j];
      if (n == 0) {  // zero padding
        out[3 * j + 0] = out[3 * j + 1] = out[3 * j + 2] = 0;
        continue;
      }
      const uint8_t* p = in + static_cast<size_t>(taps.first[j]) * 3;
      const int32_t* k = taps.WeightsOf(j);
      int32_t s0 = kHalf, s1 = kHalf, s2 = kHalf;
      for (int t = 0; t < n; ++t) {
        s0 += p[3 * t + 0] * k[t];
        s1 += p[3 * t + 1] * k[t];
        s2 += p[3 * t + 2] * k[t];
      }
      out[3 * j + 0] = Clip8(s0);
      out[3 * j + 1] = Clip8(s1);
      out[3 * j + 2] = Clip8(s2);
    }
  }
}

// Vertical pass: `src` holds the intermediate rows starting at source row `src_first_row`, each
// row_bytes wide; writes taps.first.size() rows.
void VerticalPass(const uint8_t* src, size_t row_bytes, int src_first_row, const AxisTaps& taps,
                  uint8_t* dst) {
  std::vector<int32_t> acc(row_bytes);
  const int out_h = static_cast<int>(taps.first.size());
  for (int i = 0; i < out_h; ++i) {
    uint8_t* out = dst + static_cast<size_t>(i) * row_bytes;
    const int n = taps.count[i];
    if (n == 0) {
      std::memset(out, 0, row_bytes);
      continue;
    }
    std::fill(acc.begin(), acc.end(), kHalf);
    const int32_t* k = taps.WeightsOf(i);
    for (int t = 0; t < n; ++t) {
      const uint8_t* row = src + static_cast<size_t>(taps.first[i] - src_first_row + t) * row_bytes;
      const int32_t w = k[t];
      for (size_t x = 0; x < row_bytes; ++x) acc[x] += row[x] * w;
    }
    for (size_t x = 0; x < row_bytes; ++x) out[x] = Clip8(acc[x]);
  }
}

// No resampling: copy the window, zero outside the image.
void CopyWindow(RgbView src, int left, int top, int out_w, int out_h, uint8_t* dst) {
  const size_t row_bytes = static_cast<size_t>(out_w) * 3;
  const int x0 = std::max(left, 0), x1 = std::min(left + out_w, src.width);
  for (int i = 0; i < out_h; ++i) {
    uint8_t* out = dst + i * row_bytes;
    const int y = top + i;
    std::memset(out, 0, row_bytes);
    if (y < 0 || y >= src.height || x1 <= x0) continue;
    std::memcpy(out + static_cast<size_t>(x0 - left) * 3,
                src.data + (static_cast<size_t>(y) * src.width + x0) * 3,
                static_cast<size_t>(x1 - x0) * 3);
  }
}

}  // namespace

absl::StatusOr<Size2> ResizedSize(int width, int height, int shorter_side) {
  if (width <= 0 || height <= 0 || shorter_side <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resize a ", width, "x", height,
                                                   " image to shorter side ", shorter_side));
  }
  const bool portrait = width <= height;
  const int64_t short_side = portrait ? width : height;
  const int64_t long_side = portrait ? height : width;
  // Python's int(size * long / short): an exact product, a correctly rounded true division
  // (both operands are exact doubles), then truncation.
  const double new_long =
      static_cast<double>(shorter_side * long_side) / static_cast<double>(short_side);
  if (!(new_long < static_cast<double>(INT_MAX))) {
    return absl::InvalidArgumentError(absl::StrCat("resizing a ", width, "x", height,
                                                   " image to shorter side ", shorter_side,
                                                   " gives a longer side over ", INT_MAX));
  }
  const int nl = static_cast<int>(new_long);
  return portrait ? Size2{shorter_side, nl} : Size2{nl, shorter_side};
}

int CenterCropOffset(int size, int crop) {
  if (crop > size) return -((crop - size) / 2);
  const int diff = size - crop;
  int half = diff / 2;
  if (diff % 2 == 1 && half % 2 == 1) ++half;  // round(half + 0.5) rounds to even
  return half;
}

void ResampleWindow(RgbView src, int resized_w, int resized_h, Interpolation interpolation,
                    bool antialias, int left, int top, int out_w, int out_h, uint8_t* dst) {
  if (resized_w == src.width && resized_h == src.height) {
    CopyWindow(src, left, top, out_w, out_h, dst);
    return;
  }
  const Filter filter = FilterFor(interpolation);
  const AxisTaps vert = ComputeTaps(src.height, resized_h, top, out_h, filter, antialias);
  int row_first = INT_MAX, row_last = 0;
  for (int i = 0; i < out_h; ++i) {
    if (vert.count[i] == 0) continue;
    row_first = std::min(row_first, vert.first[i]);
    row_last = std::max(row_last, vert.first[i] + vert.count[i]);
  }
  const size_t row_bytes = static_cast<size_t>(out_w) * 3;
  if (row_first >= row_last) {  // the window lies entirely in the padding
    std::memset(dst, 0, row_bytes * out_h);
    return;
  }
  const AxisTaps horiz = ComputeTaps(src.width, resized_w, left, out_w, filter, antialias);
  std::vector<uint8_t> temp(row_bytes * (row_last - row_first));
  const size_t src_stride = static_cast<size_t>(src.width) * 3;
  HorizontalPass(src.data + row_first * src_stride, src_stride, row_last - row_first, horiz,
                 temp.data());
  VerticalPass(temp.data(), row_bytes, row_first, vert, dst);
}

}  // namespace visionserve::preprocess
