#pragma once

// The excitation of a squeeze-and-excitation block for one image, vectorized per ISA
// (f32_se_fc__<isa>): from the pooled channel means to the per-channel gate,
//   hidden[j] = inner(b1[j] + Σ_c w1[j][c]·pooled[c])   j < S
//   gate[c]   = gate_act(b2[c] + Σ_j w2[c][j]·hidden[j])  c < C
// (torchvision SqueezeExcitation: fc1, activation, fc2, scale activation). fc2's weight is
// passed transposed, [S][C], so both products run along contiguous channels.

#include <cstdint>
#include <string_view>

#include "engine/activation.h"
#include "engine/cpu_features.h"

namespace visionserve::engine::kernels {

struct SqueezeExciteFc {
  int64_t channels = 0;          // C
  int64_t squeeze_channels = 0;  // S
  const float* w1 = nullptr;     // [S][C]
  const float* b1 = nullptr;     // [S]
  const float* w2t = nullptr;    // [S][C] (fc2.weight transposed)
  const float* b2 = nullptr;     // [C]
  Activation inner = Activation::kReLU;
  Activation gate = Activation::kSigmoid;
};

// pooled [C] → gate [C], using hidden [S] as workspace. No buffer may overlap another.
using SqueezeExciteFcFn = void (*)(const SqueezeExciteFc& fc, const float* pooled, float* hidden,
                                   float* gate);

struct SqueezeExciteKernel {
  SqueezeExciteFcFn fn = nullptr;
  std::string_view name;  // "f32_se_fc__avx512"
};

// The kernel for `isa` (the caller makes sure the CPU supports it).
SqueezeExciteKernel GetSqueezeExciteKernel(Isa isa);

// Plain reference in double precision.
void SqueezeExciteFcRef(const SqueezeExciteFc& fc, const float* pooled, float* hidden, float* gate);

namespace internal {
SqueezeExciteFcFn SqueezeExciteFcAvx2();
SqueezeExciteFcFn SqueezeExciteFcAvx512();
}  // namespace internal

}  // namespace visionserve::engine::kernels
