#pragma once

// Pooling over NHWC images, vectorized over channels per ISA:
//   f32_gavgpool__<isa>  mean over all pixels of a range of channels
//   f32_maxpool__<isa>   k×k max pool with stride and padding (padding acts as −inf, as torch)

#include <cstdint>
#include <string_view>

#include "engine/cpu_features.h"

namespace visionserve::engine::kernels {

// y[c] = (1/pixels)·Σ_p x[p·stride + c] for c < channels; `x` points at the first channel of
// the range, `stride` is the pixel stride in floats (the tensor's C). Sums are blocked (pixels
// in chunks, chunks summed), so rounding grows with sqrt-ish of the count, not linearly.
using GlobalAvgPoolFn = void (*)(const float* x, int64_t pixels, int64_t stride, int64_t channels,
                                 float* y);

struct MaxPoolParams {
  int64_t in_h = 0, in_w = 0;
  int64_t channels = 0;
  int64_t out_h = 0, out_w = 0;
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0;
};

// Output rows [oy_begin, oy_end) of one image: out[oy][ox][c] = max over the taps inside the
// input (−inf when a window has none). NaN inputs propagate. input [in_h][in_w][C], output
// [out_h][out_w][C], not overlapping.
using MaxPoolFn = void (*)(const MaxPoolParams& p, const float* input, float* output,
                           int64_t oy_begin, int64_t oy_end);

struct PoolingKernels {
  GlobalAvgPoolFn gavgpool = nullptr;
  MaxPoolFn maxpool = nullptr;
  std::string_view gavgpool_name;  // "f32_gavgpool__avx512"
  std::string_view maxpool_name;   // "f32_maxpool__avx512"
};

// The kernels for `isa` (the caller makes sure the CPU supports it).
const PoolingKernels& GetPoolingKernels(Isa isa);

// Plain references (double accumulation for the average).
void GlobalAvgPoolRef(const float* x, int64_t pixels, int64_t stride, int64_t channels, float* y);
void MaxPoolRef(const MaxPoolParams& p, const float* input, float* output, int64_t oy_begin,
                int64_t oy_end);

namespace internal {
struct PoolingKernelSet {
  GlobalAvgPoolFn gavgpool = nullptr;
  MaxPoolFn maxpool = nullptr;
};
void FillPoolingKernelsAvx2(PoolingKernelSet* set);
void FillPoolingKernelsAvx512(PoolingKernelSet* set);
}  // namespace internal

}  // namespace visionserve::engine::kernels
