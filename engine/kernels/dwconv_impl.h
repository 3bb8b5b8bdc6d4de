#pragma once

// Internal to engine/kernels: the depthwise convolution kernels of dwconv.h as templates over a
// vector wrapper V, instantiated per ISA in dwconv.cc / dwconv_avx2.cc / dwconv_avx512.cc.
//
// Unrolled kernels (K×K, stride S), one call = a range of rows × channels of one image:
//   for each output row
//     stage the input rows it needs that are not staged yet: each row is read once, in memory
//     order (the hardware prefetchers stream it), and scattered into a ring of K rows per
//     channel block (one vector per pixel, zero-padded left and right, so edges need no code
//     and no tap reads outside the image)
//     for each block of R output pixels, for each channel block: R accumulators in registers,
//       tap by tap (each FMA takes its input straight from the ring, which is in L1/L2), then
//       bias, residual, activation and the stores: the block's R·C outputs are one contiguous
//       region, so output lines are written whole and in order
//     with a channel norm, normalise the finished row while it is in cache.
// Walking one channel block over whole rows instead (the obvious NHWC loop) reads one line in
// every C/16 and runs at a third of streaming bandwidth. Kernel rows outside the image are
// skipped. When the ring for all channels would exceed kDwconvRingBudgetBytes, channels go in
// passes.
// The generic kernel (any size, stride, dilation) clips the taps of each pixel instead.

#include <cstdint>

#include "engine/kernels/dwconv.h"
#include "engine/kernels/normalization_impl.h"
#include "engine/kernels/vector_math.h"

namespace visionserve::engine::kernels::dwconv_impl {

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
  if constexpr (V::kLanes >= 16) {
    return 16;  // 32 zmm: 16 accumulators + a weight
  } else {
    return 8;  // 16 registers
  }
}
// The rest of a row: one block of 8 if it fits, then blocks of 4 (the last one partial; the
// ring is padded for it, see DwconvStagedRowPixels).
inline constexpr int kMidBlockPixels = 8;
inline constexpr int kSmallBlockPixels = static_cast<int>(kDwconvMinBlockPixels);

// Per-call constants and pointers (image bases; channel offsets are applied per block).
struct Call {
  const DwconvParams* p;
  const float* input;
  const float* weights;
  const float* bias;
  const float* residual;  // or nullptr
  float* output;
  int64_t padded_c;
};

// Residual and activation of `count` ≤ R finished vectors at output offset `offset` (pixel
// stride C), then the stores.
template <class V, int R, bool kTail>
inline void Finish(const Call& c, typename V::F* acc, int64_t offset, int64_t count,
                   typename V::Tail tail) {
  const int64_t stride = c.p->channels;
  if (c.residual != nullptr) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      if (r < count)
        acc[r] = V::Add(acc[r], LoadC<V, kTail>(c.residual + offset + r * stride, tail));
    }
  }
  vmath::ActivateBlock<V, R>(c.p->act, acc);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    if (r < count) StoreC<V, kTail>(c.output + offset + r * stride, acc[r], tail);
  }
}

// The staging ring of one channel pass: for each of its channel blocks, K slots of `width`
// pixels (one vector each); input row iy lives in slot iy % K.
template <class V>
struct Ring {
  float* data;
  int64_t width;
  int k;
  int64_t BlockStride() const { return k * width * V::kLanes; }
  int64_t SlotOffset(int64_t iy) const { return (iy % k) * width * V::kLanes; }
};

// Zeroes the padding columns of every slot of `blocks` channel blocks (data columns are
// overwritten by staging).
template <class V>
inline void ClearRingPadding(const Ring<V>& ring, int64_t blocks, int64_t pad_left, int64_t in_w) {
  for (int64_t s = 0; s < blocks * ring.k; ++s) {
    float* row = ring.data + s * ring.width * V::kLanes;
    for (int64_t x = 0; x < pad_left; ++x) V::Store(row + x * V::kLanes, V::Zero());
    for (int64_t x = pad_left + in_w; x < ring.width; ++x) V::Store(row + x * V::kLanes, V::Zero());
  }
}

// Stages channel blocks [b0, b1) of input row iy, reading the row in memory order. Lanes past
// C become 0.
template <class V>
inline void StageRow(const Call& c, const Ring<V>& ring, int64_t iy, int64_t b0, int64_t b1) {
  constexpr int64_t kL = V::kLanes;
  const DwconvParams& p = *c.p;
  const int64_t full_end = p.channels / kL < b1 ? p.channels / kL : b1;
  const typename V::Tail tail =
      full_end < b1 ? V::MakeTail(p.channels - full_end * kL) : typename V::Tail{};
  const int64_t bstride = ring.BlockStride();
  const float* src = c.input + iy * p.in_w * p.channels + b0 * kL;
  float* dst = ring.data + ring.SlotOffset(iy) + p.pad_left * kL;
  for (int64_t x = 0; x < p.in_w; ++x) {
    const float* px = src + x * p.channels;
    float* d = dst + x * kL;
    int64_t b = b0;
    for (; b + 2 <= full_end; b += 2) {
      const auto v0 = V::Load(px + (b - b0) * kL);
      const auto v1 = V::Load(px + (b - b0 + 1) * kL);
      V::Store(d + (b - b0) * bstride, v0);
      V::Store(d + (b - b0 + 1) * bstride, v1);
    }
    if (b < full_end) {
      V::Store(d + (b - b0) * bstride, V::Load(px + (b - b0) * kL));
      ++b;
    }
    if (b < b1) V::Store(d + (b - b0) * bstride, V::LoadTail(px + (b - b0) * kL, tail));
  }
}

// R output pixels from ox0 of one output row for one channel block: `ring_block` is the block's
// first slot, slot_offset[ky] the offset of kernel row ky's input row (ky in [ky0, ky1)).
template <class V, int K, int S, int R>
inline void RingBlock(const float* ring_block, const int64_t* slot_offset, const float* weights,
                      int64_t padded_c, typename V::F bias, int64_t ox0, int ky0, int ky1,
                      typename V::F* acc) {
  using F = typename V::F;
  constexpr int64_t kL = V::kLanes;
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = bias;
  for (int ky = ky0; ky < ky1; ++ky) {
    const float* row = ring_block + slot_offset[ky] + ox0 * S * kL;
    const float* wrow = weights + ky * K * padded_c;
    // Tap by tap: the accumulators are independent within a tap.
#pragma GCC unroll 8
    for (int kx = 0; kx < K; ++kx) {
      const F w = V::Load(wrow + kx * padded_c);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r] = V::Fma(V::Load(row + (r * S + kx) * kL), w, acc[r]);
    }
  }
}

// Channel blocks [b0, b1) of output pixels [ox, ox + count) of row oy (count ≤ R).
template <class V, int K, int S, int R>
inline void Columns(const Call& c, const Ring<V>& ring, const int64_t* slot_offset, int64_t oy,
                    int64_t ox, int64_t count, int ky0, int ky1, int64_t b0, int64_t b1) {
  constexpr int64_t kL = V::kLanes;
  const DwconvParams& p = *c.p;
  const int64_t full_end = p.channels / kL < b1 ? p.channels / kL : b1;
  const int64_t offset = (oy * p.out_w + ox) * p.channels;
  typename V::F acc[R];
  for (int64_t b = b0; b < b1; ++b) {
    RingBlock<V, K, S, R>(ring.data + (b - b0) * ring.BlockStride(), slot_offset,
                          c.weights + b * kL, c.padded_c, V::Load(c.bias + b * kL), ox, ky0, ky1,
                          acc);
    if (b < full_end) {
      Finish<V, R, false>(c, acc, offset + b * kL, count, typename V::Tail{});
    } else {
      Finish<V, R, true>(c, acc, offset + b * kL, count, V::MakeTail(p.channels - b * kL));
    }
  }
}

template <class V, int K, int S>
void FastRows(const Call& c, const Ring<V>& ring, int64_t b0, int64_t b1, int64_t oy_begin,
              int64_t oy_end, bool norm_rows) {
  constexpr int kR = BlockPixels<V, K>();
  const DwconvParams& p = *c.p;
  int64_t staged_end = -1;  // input rows below this are staged (within the current window)
  int64_t slot_offset[K];
  for (int64_t oy = oy_begin; oy < oy_end; ++oy) {
    const int64_t iy0 = oy * S - p.pad_top;
    const int ky0 = iy0 < 0 ? static_cast<int>(-iy0 < K ? -iy0 : K) : 0;
    const int64_t below = p.in_h - iy0;
    const int ky1 = below < K ? static_cast<int>(below < ky0 ? ky0 : below) : K;
    for (int64_t iy = iy0 + ky0 > staged_end ? iy0 + ky0 : staged_end; iy < iy0 + ky1; ++iy) {
      StageRow<V>(c, ring, iy, b0, b1);
    }
    if (iy0 + ky1 > staged_end) staged_end = iy0 + ky1;
    for (int ky = ky0; ky < ky1; ++ky) slot_offset[ky] = ring.SlotOffset(iy0 + ky);
    int64_t ox = 0;
    for (; ox + kR <= p.out_w; ox += kR) {
      Columns<V, K, S, kR>(c, ring, slot_offset, oy, ox, kR, ky0, ky1, b0, b1);
    }
    if constexpr (kR > kMidBlockPixels) {
      if (ox + kMidBlockPixels <= p.out_w) {
        Columns<V, K, S, kMidBlockPixels>(c, ring, slot_offset, oy, ox, kMidBlockPixels, ky0, ky1,
                                          b0, b1);
        ox += kMidBlockPixels;
      }
    }
    // The rest in small blocks (the ring is padded for whole blocks).
    for (; ox < p.out_w; ox += kSmallBlockPixels) {
      const int64_t count = p.out_w - ox < kSmallBlockPixels ? p.out_w - ox : kSmallBlockPixels;
      Columns<V, K, S, kSmallBlockPixels>(c, ring, slot_offset, oy, ox, count, ky0, ky1, b0, b1);
    }
    if (norm_rows) {
      float* row = c.output + oy * p.out_w * p.channels;
      norm_impl::NormalizePixels<V>(row, row, p.out_w, p.channels, nullptr, nullptr, p.norm_eps);
    }
  }
}

// One output pixel, one channel block, every tap clipped to the image (the generic kernel).
template <class V, bool kTail>
inline void ClippedPixel(const Call& c, int64_t oy, int64_t ox, int64_t b, typename V::Tail tail) {
  constexpr int64_t kL = V::kLanes;
  const DwconvParams& p = *c.p;
  const int64_t ch = p.channels;
  const int64_t iy0 = oy * p.stride_h - p.pad_top;
  const int64_t ix0 = ox * p.stride_w - p.pad_left;
  auto acc = V::Load(c.bias + b * kL);
  for (int ky = 0; ky < p.kernel_h; ++ky) {
    const int64_t iy = iy0 + static_cast<int64_t>(ky) * p.dilation_h;
    if (iy < 0 || iy >= p.in_h) continue;
    const float* row = c.input + iy * p.in_w * ch + b * kL;
    const float* wrow = c.weights + static_cast<int64_t>(ky) * p.kernel_w * c.padded_c + b * kL;
    for (int kx = 0; kx < p.kernel_w; ++kx) {
      const int64_t ix = ix0 + static_cast<int64_t>(kx) * p.dilation_w;
      if (ix < 0 || ix >= p.in_w) continue;
      acc = V::Fma(LoadC<V, kTail>(row + ix * ch, tail), V::Load(wrow + kx * c.padded_c), acc);
    }
  }
  Finish<V, 1, kTail>(c, &acc, (oy * p.out_w + ox) * ch + b * kL, 1, tail);
}

template <class V>
void GenericRows(const Call& c, const DwconvRange& range) {
  constexpr int64_t kL = V::kLanes;
  const DwconvParams& p = *c.p;
  const int64_t b0 = range.c_begin / kL;
  const int64_t b1 = (range.c_end + kL - 1) / kL;
  const int64_t full_end = p.channels / kL < b1 ? p.channels / kL : b1;
  const typename V::Tail tail =
      full_end < b1 ? V::MakeTail(p.channels - full_end * kL) : typename V::Tail{};
  for (int64_t oy = range.oy_begin; oy < range.oy_end; ++oy) {
    for (int64_t ox = 0; ox < p.out_w; ++ox) {
      for (int64_t b = b0; b < full_end; ++b) {
        ClippedPixel<V, false>(c, oy, ox, b, typename V::Tail{});
      }
      if (full_end < b1) ClippedPixel<V, true>(c, oy, ox, full_end, tail);
    }
  }
}

// The DwconvFn for kernel size K (0: generic) on wrapper V.
template <class V, int K>
void Dwconv(const DwconvParams& p, const float* input, const float* weights, const float* bias,
            const float* residual, float* output, const DwconvRange& range, float* scratch) {
  constexpr int64_t kL = V::kLanes;
  const Call c{&p, input, weights, bias, residual, output, DwconvPaddedChannels(p.channels)};
  bool normalized = false;
  if constexpr (K == 0) {
    (void)scratch;
    GenericRows<V>(c, range);
  } else {
    const int64_t b_begin = range.c_begin / kL;
    const int64_t b_end = (range.c_end + kL - 1) / kL;
    const Ring<V> ring{
        scratch, DwconvStagedRowPixels(p.in_w, p.out_w, p.stride_w, p.kernel_w, p.pad_left), K};
    const int64_t pass_blocks = DwconvPassChannels(p) / kL;
    const int64_t used = pass_blocks < b_end - b_begin ? pass_blocks : b_end - b_begin;
    ClearRingPadding<V>(ring, used, p.pad_left, p.in_w);
    normalized = p.channel_norm && pass_blocks >= b_end - b_begin;
    for (int64_t b0 = b_begin; b0 < b_end; b0 += pass_blocks) {
      const int64_t b1 = b0 + pass_blocks < b_end ? b0 + pass_blocks : b_end;
      if (p.stride_h == 1) {
        FastRows<V, K, 1>(c, ring, b0, b1, range.oy_begin, range.oy_end, normalized);
      } else {
        FastRows<V, K, 2>(c, ring, b0, b1, range.oy_begin, range.oy_end, normalized);
      }
    }
  }
  if (p.channel_norm && !normalized) {
    float* rows = output + range.oy_begin * p.out_w * p.channels;
    norm_impl::NormalizePixels<V>(rows, rows, (range.oy_end - range.oy_begin) * p.out_w, p.channels,
                                  nullptr, nullptr, p.norm_eps);
  }
}

}  // namespace visionserve::engine::kernels::dwconv_impl
