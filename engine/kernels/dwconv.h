#pragma once

// Depthwise k×k convolution over NHWC f32, one image at a time:
//   out[oy][ox][c] = post(bias[c] + Σ_{ky,kx} in[oy·sh − pt + ky·dh][ox·sw − pl + kx·dw][c] ·
//                                               w[c][ky][kx]  (+ residual[oy][ox][c]))
// with taps outside the input skipped (zero padding), post = the activation, and optionally a
// channel norm of every output pixel afterwards (zero mean, unit variance over its C channels:
// a LayerNorm whose affine was folded into the consumer).
//
// Microkernels f32_dwconv_<k>x<k>__<isa> (k = 3, 5, 7; stride 1 or 2; any padding; dilation 1)
// and f32_dwconv_kxk__<isa> (anything else) vectorize over channels (a masked/partial vector
// for C % lanes) and take pointers, geometry, params and scratch only; they allocate nothing.
// The unrolled kernels go row by row: the input rows an output row needs are staged once, read
// in memory order, into a zero-padded ring of kernel_h rows per channel block (scratch, L1/L2
// resident), so edges need no special code and no tap reads outside the image; then blocks of
// up to 16 output pixels are computed channel block by channel block with the accumulators in
// registers and the taps unrolled, and written as one contiguous region. The generic kernel
// clips each pixel's taps instead. See dwconv_impl.h.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/activation.h"
#include "engine/cpu_features.h"
#include "engine/tensor.h"

namespace visionserve::engine::kernels {

// Packed weights are [kh][kw][PaddedChannels(C)] and bias [PaddedChannels(C)], zero past C, so
// every ISA can load whole vectors of them.
inline constexpr int64_t kDwconvChannelAlign = 16;
[[gnu::always_inline]] inline constexpr int64_t DwconvPaddedChannels(int64_t c) {
  return (c + kDwconvChannelAlign - 1) / kDwconvChannelAlign * kDwconvChannelAlign;
}

// Output pixels the unrolled kernels compute at a time: up to 16, and blocks of this many for
// the end of a row.
inline constexpr int64_t kDwconvMinBlockPixels = 4;

struct DwconvParams {
  int64_t in_h = 0, in_w = 0;
  int64_t channels = 0;  // C: also the pixel stride (floats) of input, output and residual
  int64_t out_h = 0, out_w = 0;
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0;  // bottom/right padding is implied by out_h/out_w
  int dilation_h = 1, dilation_w = 1;
  Activation act = Activation::kNone;
  bool channel_norm = false;
  float norm_eps = 1e-6f;
};

// The part of one image's output a call computes: rows [oy_begin, oy_end) × channels
// [c_begin, c_end). c_begin is a multiple of kDwconvChannelAlign, and so is c_end unless it is C.
// With channel_norm the range must cover all channels.
struct DwconvRange {
  int64_t oy_begin = 0, oy_end = 0;
  int64_t c_begin = 0, c_end = 0;
};

// Computes `range` of one image's output.
//  input:    [in_h][in_w][C]
//  weights:  packed, [kernel_h][kernel_w][DwconvPaddedChannels(C)]
//  bias:     [DwconvPaddedChannels(C)] (zeros for a conv without bias)
//  residual: [out_h][out_w][C] or nullptr; added after the bias, before the activation. It may
//            be the same buffer as output (each element is read before it is written).
//  output:   [out_h][out_w][C]; must not overlap input. Only `range` is written.
//  scratch:  DwconvScratchFloats(p) floats, 64-byte aligned, owned by the calling thread.
// Requirements (checked by the op, not here): output dims consistent with the geometry, all
// sizes ≥ 1, paddings ≥ 0, strides and dilations ≥ 1.
using DwconvFn = void (*)(const DwconvParams& p, const float* input, const float* weights,
                          const float* bias, const float* residual, float* output,
                          const DwconvRange& range, float* scratch);

// Scratch floats any dwconv kernel needs for `p` (the staging ring: kernel_h zero-padded rows
// of DwconvPassChannels(p) channels).
int64_t DwconvScratchFloats(const DwconvParams& p);

// Ring geometry, shared by DwconvScratchFloats and the ISA-specific kernels. always_inline: the
// kernels are compiled with ISA flags, and an out-of-line copy of a shared inline function from
// such a file could be the one the linker keeps for every caller.
//
// Pixels per staged row: pad_left zeros, the input row, and zeros up to the last column that
// blocks of output pixels read (the last block of a row may be a partial block of
// kDwconvMinBlockPixels).
[[gnu::always_inline]] inline constexpr int64_t DwconvStagedRowPixels(int64_t in_w, int64_t out_w,
                                                                      int stride, int kernel_w,
                                                                      int pad_left) {
  const int64_t blocks_end =
      (out_w + kDwconvMinBlockPixels - 1) / kDwconvMinBlockPixels * kDwconvMinBlockPixels;
  const int64_t covered = (blocks_end - 1) * stride + kernel_w;
  return pad_left + in_w > covered ? pad_left + in_w : covered;
}

// Bytes the staged rows may take (they should stay in L2).
inline constexpr int64_t kDwconvRingBudgetBytes = 1 << 20;

// Channels staged per pass (a multiple of kDwconvChannelAlign, so of every ISA's vector width):
// all of them when kernel_h staged rows of all channels fit kDwconvRingBudgetBytes.
[[gnu::always_inline]] inline constexpr int64_t DwconvPassChannels(const DwconvParams& p) {
  const int64_t row_floats =
      p.kernel_h * DwconvStagedRowPixels(p.in_w, p.out_w, p.stride_w, p.kernel_w, p.pad_left);
  const int64_t fit =
      kDwconvRingBudgetBytes / 4 / row_floats / kDwconvChannelAlign * kDwconvChannelAlign;
  const int64_t all = DwconvPaddedChannels(p.channels);
  const int64_t pass = fit < all ? fit : all;
  return pass < kDwconvChannelAlign ? kDwconvChannelAlign : pass;
}

struct DwconvKernel {
  DwconvFn fn = nullptr;
  std::string_view name;  // e.g. "f32_dwconv_7x7__avx512"
};

// The kernel for a geometry at `isa` (the caller makes sure the CPU supports `isa`): the
// unrolled one for square 3/5/7 kernels with stride 1 or 2 (both directions equal) and no
// dilation, else the generic one.
DwconvKernel GetDwconvKernel(Isa isa, int kernel_h, int kernel_w, int stride_h, int stride_w,
                             int dilation_h, int dilation_w);

// Weights packed once for every kernel and ISA.
class DwconvPackedWeights {
 public:
  // weight: torch layout [C][1][kernel_h][kernel_w]; bias: [C] or nullptr.
  static DwconvPackedWeights Pack(int64_t channels, int kernel_h, int kernel_w, const float* weight,
                                  const float* bias);
  const float* weights() const { return weights_.get(); }
  const float* bias() const { return bias_.get(); }
  size_t bytes() const;

 private:
  int64_t channels_ = 0;
  int kernel_h_ = 0, kernel_w_ = 0;
  AlignedPtr<float> weights_;
  AlignedPtr<float> bias_;
};

// Plain reference over rows [oy_begin, oy_end) (all channels), double accumulation, torch-layout
// weights [C][1][kh][kw], bias [C] or nullptr, the same epilogue (bias, residual, activation as
// in ActivationRef, then the optional channel norm in double).
void DwconvRef(const DwconvParams& p, const float* input, const float* weight, const float* bias,
               const float* residual, float* output, int64_t oy_begin, int64_t oy_end);

namespace internal {
// Per-ISA kernels: index 0..2 for k = 3, 5, 7, index 3 generic.
struct DwconvKernelSet {
  DwconvFn fn[4] = {};
};
void FillDwconvKernelsAvx2(DwconvKernelSet* set);
void FillDwconvKernelsAvx512(DwconvKernelSet* set);
}  // namespace internal

}  // namespace visionserve::engine::kernels
