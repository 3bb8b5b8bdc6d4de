#pragma once

// Internal to engine/kernels: the pooling kernels of pooling_kernels.h as templates over a
// vector wrapper V, instantiated per ISA.

#include <cstdint>
#include <limits>

#include "engine/kernels/pooling_kernels.h"

namespace visionserve::engine::kernels::pooling_impl {

// Pixels summed into a partial sum before it is added to the total.
inline constexpr int64_t kPoolChunk = 64;

// Channels [0, N·lanes) (or one partial vector when kTail) of the average over all pixels.
template <class V, int N, bool kTail>
inline void AvgPoolBlock(const float* x, int64_t pixels, int64_t stride, float scale, float* y,
                         typename V::Tail tail) {
  using F = typename V::F;
  constexpr int64_t kL = V::kLanes;
  F total[N];
  for (int j = 0; j < N; ++j) total[j] = V::Zero();
  for (int64_t p0 = 0; p0 < pixels; p0 += kPoolChunk) {
    const int64_t p1 = p0 + kPoolChunk < pixels ? p0 + kPoolChunk : pixels;
    F part[N];
    for (int j = 0; j < N; ++j) part[j] = V::Zero();
    for (int64_t p = p0; p < p1; ++p) {
      const float* px = x + p * stride;
#pragma GCC unroll 8
      for (int j = 0; j < N; ++j) {
        if constexpr (kTail) {
          part[j] = V::Add(part[j], V::LoadTail(px, tail));
        } else {
          part[j] = V::Add(part[j], V::Load(px + j * kL));
        }
      }
    }
    for (int j = 0; j < N; ++j) total[j] = V::Add(total[j], part[j]);
  }
  const F s = V::Set(scale);
  for (int j = 0; j < N; ++j) {
    if constexpr (kTail) {
      V::StoreTail(y, V::Mul(total[j], s), tail);
    } else {
      V::Store(y + j * kL, V::Mul(total[j], s));
    }
  }
}

template <class V>
void GlobalAvgPool(const float* x, int64_t pixels, int64_t stride, int64_t channels, float* y) {
  constexpr int64_t kL = V::kLanes;
  const float scale = 1.f / static_cast<float>(pixels);
  const typename V::Tail none{};
  // Wide channel blocks (8 vectors: partial and total sums fill 16 registers) so each pass reads
  // a long contiguous run of every pixel.
  constexpr int kWide = V::kLanes >= 16 ? 8 : 4;
  int64_t c = 0;
  for (; c + kWide * kL <= channels; c += kWide * kL) {
    AvgPoolBlock<V, kWide, false>(x + c, pixels, stride, scale, y + c, none);
  }
  for (; c + 2 * kL <= channels; c += 2 * kL) {
    AvgPoolBlock<V, 2, false>(x + c, pixels, stride, scale, y + c, none);
  }
  for (; c + kL <= channels; c += kL) {
    AvgPoolBlock<V, 1, false>(x + c, pixels, stride, scale, y + c, none);
  }
  if (c < channels) {
    AvgPoolBlock<V, 1, true>(x + c, pixels, stride, scale, y + c, V::MakeTail(channels - c));
  }
}

template <class V, bool kTail>
inline void MaxPoolPixel(const MaxPoolParams& p, const float* input, float* out, int64_t c0,
                         int64_t iy0, int64_t ix0, int ky0, int ky1, int kx0, int kx1,
                         typename V::Tail tail) {
  auto acc = V::Set(-std::numeric_limits<float>::infinity());
  auto nan = V::Lt(acc, acc);  // all false
  for (int ky = ky0; ky < ky1; ++ky) {
    const float* row = input + ((iy0 + ky) * p.in_w + ix0) * p.channels + c0;
    for (int kx = kx0; kx < kx1; ++kx) {
      const auto v =
          kTail ? V::LoadTail(row + kx * p.channels, tail) : V::Load(row + kx * p.channels);
      acc = V::Max(v, acc);
      nan = V::Or(nan, V::IsNan(v));
    }
  }
  acc = V::Select(nan, V::Set(std::numeric_limits<float>::quiet_NaN()), acc);
  if constexpr (kTail) {
    V::StoreTail(out + c0, acc, tail);
  } else {
    V::Store(out + c0, acc);
  }
}

template <class V>
void MaxPool(const MaxPoolParams& p, const float* input, float* output, int64_t oy_begin,
             int64_t oy_end) {
  constexpr int64_t kL = V::kLanes;
  const typename V::Tail none{};
  const int64_t full = p.channels / kL * kL;
  const typename V::Tail tail = V::MakeTail(p.channels - full);
  for (int64_t oy = oy_begin; oy < oy_end; ++oy) {
    const int64_t iy0 = oy * p.stride_h - p.pad_top;
    const int ky0 = iy0 < 0 ? static_cast<int>(-iy0 < p.kernel_h ? -iy0 : p.kernel_h) : 0;
    const int64_t below = p.in_h - iy0;
    const int ky1 = below < p.kernel_h ? static_cast<int>(below < ky0 ? ky0 : below) : p.kernel_h;
    for (int64_t ox = 0; ox < p.out_w; ++ox) {
      const int64_t ix0 = ox * p.stride_w - p.pad_left;
      const int kx0 = ix0 < 0 ? static_cast<int>(-ix0 < p.kernel_w ? -ix0 : p.kernel_w) : 0;
      const int64_t right = p.in_w - ix0;
      const int kx1 = right < p.kernel_w ? static_cast<int>(right < kx0 ? kx0 : right) : p.kernel_w;
      float* out = output + (oy * p.out_w + ox) * p.channels;
      for (int64_t c0 = 0; c0 < full; c0 += kL) {
        MaxPoolPixel<V, false>(p, input, out, c0, iy0, ix0, ky0, ky1, kx0, kx1, none);
      }
      if (full < p.channels) {
        MaxPoolPixel<V, true>(p, input, out, full, iy0, ix0, ky0, ky1, kx0, kx1, tail);
      }
    }
  }
}

}  // namespace visionserve::engine::kernels::pooling_impl
