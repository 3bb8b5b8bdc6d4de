#include "engine/kernels/activation_kernels.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "engine/kernels/activation_kernels_internal.h"
#include "engine/kernels/simd_portable.h"
#include "engine/kernels/vector_math.h"

// Accuracy of the vector kernels, against ActivationRef (double precision, rounded to float).
// With err = |y − ref|, every output satisfies err ≤ rel·|ref| + abs:
//
//   activation   rel       abs       how
//   none         0         0         a copy
//   relu         0         0         max(0, x); relu(−0) = −0
//   relu6        0         0         min(6, max(0, x))
//   hardsigmoid  1.3e-7    0         (x + 3) clamped to [0, 6], times 1/6
//   hardswish    2.6e-7    0         x · hardsigmoid(x)
//   sigmoid      2.8e-7    1.2e-38   e^-|x| / (1 + e^-|x|), mirrored for x > 0
//   silu         3.2e-7    1.1e-36   x · sigmoid(x)
//   gelu         6.8e-7    1.2e-38   x·Φ(x), Φ as in vmath::Gelu (not 1/2·(1 + erf), which
//                                    loses all relative accuracy below x ≈ −4)
//
// The exponential is a Cody–Waite reduction and a degree-6 polynomial; reciprocals are rcp14 + 1
// Newton step (AVX-512), rcp + 2 steps (AVX2) or a division (portable). The bounds were measured
// exhaustively over all 2^32 float inputs for each ISA (worst seen: hardsigmoid 1.19e-7,
// hardswish 2.37e-7, sigmoid 2.55e-7, silu 2.92e-7, gelu 6.2e-7, the larger ones on the
// portable path, which has no fused multiply-add); activation_kernels_test.cc enforces them on
// every binade, dense sweeps and the break points. The absolute terms only cover results below
// 2^-126 (or silu's x·e^x just under it), which the kernels flush to 0, as the engine's worker
// threads (FTZ/DAZ) would anyway. With FTZ/DAZ set, every activation also gets 2^-126 of
// absolute error (subnormal inputs read as 0, subnormal results become 0); the relative bounds
// hold in both modes. NaN inputs give NaN for every activation; ±inf give the limits,
// except silu, gelu and hardswish of −inf, which are NaN (−inf · 0) as in torch.

namespace visionserve::engine::kernels {

namespace {

using internal::kNumActivations;

struct ActivationTables {
  std::array<ActivationFn, kNumActivations> portable{};
  std::array<ActivationFn, kNumActivations> avx2{};
  std::array<ActivationFn, kNumActivations> avx512{};
};

const ActivationTables& Tables() {
  static const ActivationTables tables = [] {
    ActivationTables t;
    using V = simd::PortableVec;
    t.portable[static_cast<int>(Activation::kNone)] =
        &vmath::ActivationKernel<V, Activation::kNone>;
    t.portable[static_cast<int>(Activation::kReLU)] =
        &vmath::ActivationKernel<V, Activation::kReLU>;
    t.portable[static_cast<int>(Activation::kReLU6)] =
        &vmath::ActivationKernel<V, Activation::kReLU6>;
    t.portable[static_cast<int>(Activation::kSiLU)] =
        &vmath::ActivationKernel<V, Activation::kSiLU>;
    t.portable[static_cast<int>(Activation::kGELU)] =
        &vmath::ActivationKernel<V, Activation::kGELU>;
    t.portable[static_cast<int>(Activation::kSigmoid)] =
        &vmath::ActivationKernel<V, Activation::kSigmoid>;
    t.portable[static_cast<int>(Activation::kHardSwish)] =
        &vmath::ActivationKernel<V, Activation::kHardSwish>;
    t.portable[static_cast<int>(Activation::kHardSigmoid)] =
        &vmath::ActivationKernel<V, Activation::kHardSigmoid>;
    internal::FillActivationKernelsAvx2(t.avx2.data());
    internal::FillActivationKernelsAvx512(t.avx512.data());
    return t;
  }();
  return tables;
}

double RefValue(Activation act, double x) {
  switch (act) {
    case Activation::kNone:
      return x;
    case Activation::kReLU:
      return x > 0 ? x : (x == 0 ? x : 0.0);  // keeps the sign of zero, like max(0, x)
    case Activation::kReLU6:
      return std::min(std::max(x, 0.0), 6.0);
    case Activation::kSiLU:
      return x / (1.0 + std::exp(-x));
    case Activation::kGELU:
      // Φ(x) through erfc, which stays accurate in the negative tail where 1 + erf cancels.
      return x * 0.5 * std::erfc(-x / std::sqrt(2.0));
    case Activation::kSigmoid:
      return 1.0 / (1.0 + std::exp(-x));
    case Activation::kHardSwish:
      return x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
    case Activation::kHardSigmoid:
      return std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
  }
  return x;
}

}  // namespace

ActivationFn GetActivationKernel(Activation act, Isa isa) {
  const ActivationTables& t = Tables();
  const int i = static_cast<int>(act);
  switch (isa) {
    case Isa::kAvx512:
      return t.avx512[i];
    case Isa::kAvx2:
      return t.avx2[i];
    case Isa::kPortable:
      break;
  }
  return t.portable[i];
}

void ActivationRef(Activation act, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (std::isnan(v)) {
      y[i] = v;
      continue;
    }
    y[i] = static_cast<float>(RefValue(act, v));
  }
}

}  // namespace visionserve::engine::kernels
