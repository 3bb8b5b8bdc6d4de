#pragma once

// Per-pixel normalizations over the channels of NHWC rows, vectorized per ISA:
//   f32_layernorm__<isa>  y = (x − mean)/sqrt(var + eps)·gamma + beta  (biased variance)
//   f32_softmax__<isa>    y = exp(x − max) / Σ exp(x − max)
// Each row of `channels` floats is independent; y may equal x.

#include <cstdint>
#include <string_view>

#include "engine/cpu_features.h"

namespace visionserve::engine::kernels {

// For each of `rows` rows of `channels` floats (row stride = channels). gamma and beta are
// [channels], or both nullptr for a plain normalization (no affine).
using LayerNormFn = void (*)(const float* x, float* y, int64_t rows, int64_t channels,
                             const float* gamma, const float* beta, float eps);

// Numerically stable softmax of each row (max subtracted first).
using SoftmaxFn = void (*)(const float* x, float* y, int64_t rows, int64_t channels);

struct NormalizationKernels {
  LayerNormFn layernorm = nullptr;
  SoftmaxFn softmax = nullptr;
  std::string_view layernorm_name;  // "f32_layernorm__avx512"
  std::string_view softmax_name;    // "f32_softmax__avx512"
};

// The kernels for `isa` (the caller makes sure the CPU supports it).
const NormalizationKernels& GetNormalizationKernels(Isa isa);

// Plain references in double precision.
void LayerNormRef(const float* x, float* y, int64_t rows, int64_t channels, const float* gamma,
                  const float* beta, float eps);
void SoftmaxRef(const float* x, float* y, int64_t rows, int64_t channels);

namespace internal {
struct NormalizationKernelSet {
  LayerNormFn layernorm = nullptr;
  SoftmaxFn softmax = nullptr;
};
void FillNormalizationKernelsAvx2(NormalizationKernelSet* set);
void FillNormalizationKernelsAvx512(NormalizationKernelSet* set);
}  // namespace internal

}  // namespace visionserve::engine::kernels
