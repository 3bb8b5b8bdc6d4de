#pragma once

// Internal to engine/kernels: the depthwise convolution kernels of dwconv.h as templates over a
// vector wrapper V, instantiated per ISA in dwconv.cc / dwconv_avx2.cc / dwconv_avx512.cc.
//
// Unrolled kernels (K×K, stride S), one call = a band of output rows of one image:
//   for each sub-band of rows whose input (all channels) fits in a part of L2
//     for each channel block of V::kLanes channels (the last one partial, through masks)
//       for each output row: stage the input rows it needs that are not staged yet into a ring
//         of K rows (one vector per pixel, zero-padded left and right, contiguous: conflict-free
//         in L1), then compute the row R output pixels at a time: per kernel row, K weight
//         vectors and R accumulators stay in registers and each staged input vector is loaded
//         once and used by every accumulator whose window covers it.
//   then, with a channel norm, every output pixel of the band is normalised.
// Kernel rows outside the image are skipped; columns outside it read the ring's zeros.
// The generic kernel (any size, stride, dilation) clips the taps of each pixel instead.

#include <cstdint>

#include "engine/kernels/dwconv.h"
#include "engine/kernels/normalization_impl.h"
#include "engine/kernels/vector_math.h"

namespace visionserve::engine::kernels::dwconv_impl {

// Bytes of input rows (all channels) one sub-band may span.
inline constexpr int64_t kL2Budget = 128 * 1024;

template <class V, bool kTail>
inline typename V::F LoadC(const float* p, typename V::Tail t) {
  if constexpr (kTail) {
    return V::LoadTail(p, t);
  } else {
    (void)t;
    return V::Load(p);
  }
}

template <class V, bool kTail>
inline void StoreC(float* p, typename V::F v, typename V::Tail t) {
  if constexpr (kTail) {
    V::StoreTail(p, v, t);
  } else {
    (void)t;
    V::Store(p, v);
  }
}

// Output pixels held in registers per block, by ISA (register count) and kernel size.
template <class V, int K>
constexpr int BlockPixels() {
  static_assert(kDwconvMaxBlockPixels >= 16);
  if constexpr (V::kLanes >= 16) {
    return K >= 7 ? 16 : 12;  // 32 zmm: R accumulators + K weights + one input
  } else {
    return K >= 7 ? 6 : 8;  // 16 registers
  }
}

// Everything one channel block needs, with the channel offset applied.
template <class V>
struct BlockArgs {
  const DwconvParams* p;
  const float* input;     // image base + c0
  const float* weights;   // packed base + c0
  const float* bias;      // + c0
  const float* residual;  // image base + c0, or nullptr
  float* output;          // image base + c0
  int64_t padded_c;
  typename V::Tail tail;
};

// Residual and activation of `count` ≤ R finished vectors (pixel stride C), then the stores.
template <class V, int R, bool kTail>
inline void Finish(const BlockArgs<V>& a, typename V::F* acc, int64_t offset, int64_t count) {
  const int64_t c = a.p->channels;
  if (a.residual != nullptr) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      if (r < count) acc[r] = V::Add(acc[r], LoadC<V, kTail>(a.residual + offset + r * c, a.tail));
    }
  }
  vmath::ActivateBlock<V, R>(a.p->act, acc);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    if (r < count) StoreC<V, kTail>(a.output + offset + r * c, acc[r], a.tail);
  }
}

// The staging ring: K rows of `width` vectors; input row iy lives in slot iy % K.
template <class V>
struct Ring {
  float* data;
  int64_t width;  // pixels per row
  int k;
  float* Row(int64_t iy) const { return data + (iy % k) * width * V::kLanes; }
};

// Zeroes the padding columns of every slot (the data columns are overwritten by staging).
template <class V>
inline void ClearRingPadding(const Ring<V>& ring, int64_t pad_left, int64_t in_w) {
  for (int s = 0; s < ring.k; ++s) {
    float* row = ring.data + s * ring.width * V::kLanes;
    for (int64_t x = 0; x < pad_left; ++x) V::Store(row + x * V::kLanes, V::Zero());
    for (int64_t x = pad_left + in_w; x < ring.width; ++x) {
      V::Store(row + x * V::kLanes, V::Zero());
    }
  }
}

// Copies input row iy of this channel block into its ring slot (masked lanes become 0).
template <class V, bool kTail>
inline void StageRow(const BlockArgs<V>& a, const Ring<V>& ring, int64_t iy) {
  const DwconvParams& p = *a.p;
  const float* src = a.input + iy * p.in_w * p.channels;
  float* dst = ring.Row(iy) + p.pad_left * V::kLanes;
  int64_t x = 0;
  for (; x + 4 <= p.in_w; x += 4) {
    const auto v0 = LoadC<V, kTail>(src + (x + 0) * p.channels, a.tail);
    const auto v1 = LoadC<V, kTail>(src + (x + 1) * p.channels, a.tail);
    const auto v2 = LoadC<V, kTail>(src + (x + 2) * p.channels, a.tail);
    const auto v3 = LoadC<V, kTail>(src + (x + 3) * p.channels, a.tail);
    V::Store(dst + (x + 0) * V::kLanes, v0);
    V::Store(dst + (x + 1) * V::kLanes, v1);
    V::Store(dst + (x + 2) * V::kLanes, v2);
    V::Store(dst + (x + 3) * V::kLanes, v3);
  }
  for (; x < p.in_w; ++x) V::Store(dst + x * V::kLanes, LoadC<V, kTail>(src + x * p.channels, a.tail));
}

// R output pixels from ox0 of row oy, kernel rows [ky0, ky1) (inside the image), from the ring.
template <class V, int K, int S, int R>
inline void RingBlock(const BlockArgs<V>& a, const Ring<V>& ring, int64_t iy0, int64_t ox0,
                      int ky0, int ky1, typename V::F* acc) {
  using F = typename V::F;
  constexpr int64_t kL = V::kLanes;
  const F b = V::Load(a.bias);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = b;
  for (int ky = ky0; ky < ky1; ++ky) {
    const float* row = ring.Row(iy0 + ky) + ox0 * S * kL;
    const float* wrow = a.weights + ky * K * a.padded_c;
    F w[K];
#pragma GCC unroll 8
    for (int kx = 0; kx < K; ++kx) w[kx] = V::Load(wrow + kx * a.padded_c);
    // Staged column j of the window feeds output r through tap kx = j − r·S.
#pragma GCC unroll 48
    for (int j = 0; j < (R - 1) * S + K; ++j) {
      const F v = V::Load(row + j * kL);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const int kx = j - r * S;
        if (kx >= 0 && kx < K) acc[r] = V::Fma(v, w[kx], acc[r]);
      }
    }
  }
}

template <class V, int K, int S, bool kTail>
void FastBand(const BlockArgs<V>& a, const Ring<V>& ring, int64_t oy_begin, int64_t oy_end) {
  constexpr int kR = BlockPixels<V, K>();
  const DwconvParams& p = *a.p;
  int64_t staged_end = -1;  // rows [.., staged_end) of the current window are in the ring
  for (int64_t oy = oy_begin; oy < oy_end; ++oy) {
    const int64_t iy0 = oy * S - p.pad_top;
    const int ky0 = iy0 < 0 ? static_cast<int>(-iy0 < K ? -iy0 : K) : 0;
    const int64_t below = p.in_h - iy0;
    const int ky1 = below < K ? static_cast<int>(below < ky0 ? ky0 : below) : K;
    for (int64_t iy = iy0 + ky0 > staged_end ? iy0 + ky0 : staged_end; iy < iy0 + ky1; ++iy) {
      StageRow<V, kTail>(a, ring, iy);
    }
    if (iy0 + ky1 > staged_end) staged_end = iy0 + ky1;
    typename V::F acc[kR];
    for (int64_t ox = 0; ox < p.out_w; ox += kR) {
      RingBlock<V, K, S, kR>(a, ring, iy0, ox, ky0, ky1, acc);
      const int64_t count = p.out_w - ox < kR ? p.out_w - ox : kR;
      Finish<V, kR, kTail>(a, acc, (oy * p.out_w + ox) * p.channels, count);
    }
  }
}

// One output pixel with every tap clipped to the image (the generic kernel).
template <class V, bool kTail>
inline void ClippedPixel(const BlockArgs<V>& a, int64_t oy, int64_t ox) {
  const DwconvParams& p = *a.p;
  const int64_t c = p.channels;
  const int64_t iy0 = oy * p.stride_h - p.pad_top;
  const int64_t ix0 = ox * p.stride_w - p.pad_left;
  auto acc = V::Load(a.bias);
  for (int ky = 0; ky < p.kernel_h; ++ky) {
    const int64_t iy = iy0 + static_cast<int64_t>(ky) * p.dilation_h;
    if (iy < 0 || iy >= p.in_h) continue;
    const float* row = a.input + iy * p.in_w * c;
    const float* wrow = a.weights + static_cast<int64_t>(ky) * p.kernel_w * a.padded_c;
    for (int kx = 0; kx < p.kernel_w; ++kx) {
      const int64_t ix = ix0 + static_cast<int64_t>(kx) * p.dilation_w;
      if (ix < 0 || ix >= p.in_w) continue;
      acc = V::Fma(LoadC<V, kTail>(row + ix * c, a.tail), V::Load(wrow + kx * a.padded_c), acc);
    }
  }
  Finish<V, 1, kTail>(a, &acc, (oy * p.out_w + ox) * c, 1);
}

template <class V, bool kTail>
void GenericBand(const BlockArgs<V>& a, int64_t oy_begin, int64_t oy_end) {
  for (int64_t oy = oy_begin; oy < oy_end; ++oy) {
    for (int64_t ox = 0; ox < a.p->out_w; ++ox) ClippedPixel<V, kTail>(a, oy, ox);
  }
}

// The DwconvFn for kernel size K (0: generic) on wrapper V.
template <class V, int K>
void Dwconv(const DwconvParams& p, const float* input, const float* weights, const float* bias,
            const float* residual, float* output, int64_t oy_begin, int64_t oy_end,
            float* scratch) {
  constexpr int64_t kL = V::kLanes;
  const int64_t c = p.channels;
  const int64_t padded_c = DwconvPaddedChannels(c);
  const Ring<V> ring{scratch,
                     DwconvStagedRowPixels(p.in_w, p.out_w, p.stride_w, p.kernel_w, p.pad_left),
                     p.kernel_h};
  if constexpr (K != 0) ClearRingPadding<V>(ring, p.pad_left, p.in_w);
  // Sub-bands whose input rows (all channels) fit in a part of L2, so that the channel blocks
  // after the first find their input lines there.
  const int64_t row_bytes = p.in_w * c * static_cast<int64_t>(sizeof(float));
  const int64_t window = static_cast<int64_t>(p.kernel_h - 1) * p.dilation_h + 1;
  int64_t sub = ((kL2Budget / row_bytes) - window) / p.stride_h + 1;
  if (sub < 1) sub = 1;
  for (int64_t r0 = oy_begin; r0 < oy_end; r0 += sub) {
    const int64_t r1 = r0 + sub < oy_end ? r0 + sub : oy_end;
    for (int64_t c0 = 0; c0 < c; c0 += kL) {
      const int64_t nc = c - c0 < kL ? c - c0 : kL;
      const BlockArgs<V> a{&p,
                           input + c0,
                           weights + c0,
                           bias + c0,
                           residual != nullptr ? residual + c0 : nullptr,
                           output + c0,
                           padded_c,
                           V::MakeTail(nc)};
      const bool tail = nc < kL;
      if constexpr (K == 0) {
        tail ? GenericBand<V, true>(a, r0, r1) : GenericBand<V, false>(a, r0, r1);
      } else if (p.stride_h == 1) {
        tail ? FastBand<V, K, 1, true>(a, ring, r0, r1) : FastBand<V, K, 1, false>(a, ring, r0, r1);
      } else {
        tail ? FastBand<V, K, 2, true>(a, ring, r0, r1) : FastBand<V, K, 2, false>(a, ring, r0, r1);
      }
    }
  }
  if (p.channel_norm) {
    float* rows = output + oy_begin * p.out_w * c;
    norm_impl::NormalizePixels<V>(rows, rows, (oy_end - oy_begin) * p.out_w, c, nullptr, nullptr,
                                  p.norm_eps);
  }
}

}  // namespace visionserve::engine::kernels::dwconv_impl
