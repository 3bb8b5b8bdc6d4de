#include "engine/kernels/activation_kernels_internal.h"
#include "engine/kernels/simd_avx2.h"
#include "engine/kernels/vector_math.h"

namespace visionserve::engine::kernels::internal {

void FillActivationKernelsAvx2(ActivationFn* table) {
  using V = simd::Avx2Vec;
  table[static_cast<int>(Activation::kNone)] = &vmath::ActivationKernel<V, Activation::kNone>;
  table[static_cast<int>(Activation::kReLU)] = &vmath::ActivationKernel<V, Activation::kReLU>;
  table[static_cast<int>(Activation::kReLU6)] = &vmath::ActivationKernel<V, Activation::kReLU6>;
  table[static_cast<int>(Activation::kSiLU)] = &vmath::ActivationKernel<V, Activation::kSiLU>;
  table[static_cast<int>(Activation::kGELU)] = &vmath::ActivationKernel<V, Activation::kGELU>;
  table[static_cast<int>(Activation::kSigmoid)] = &vmath::ActivationKernel<V, Activation::kSigmoid>;
  table[static_cast<int>(Activation::kHardSwish)] =
      &vmath::ActivationKernel<V, Activation::kHardSwish>;
  table[static_cast<int>(Activation::kHardSigmoid)] =
      &vmath::ActivationKernel<V, Activation::kHardSigmoid>;
}

}  // namespace visionserve::engine::kernels::internal
