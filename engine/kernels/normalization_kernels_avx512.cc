#include "engine/kernels/normalization_impl.h"
#include "engine/kernels/normalization_kernels.h"
#include "engine/kernels/simd_avx512.h"

namespace visionserve::engine::kernels::internal {

void FillNormalizationKernelsAvx512(NormalizationKernelSet* set) {
  set->layernorm = &norm_impl::NormalizePixels<simd::Avx512Vec>;
  set->softmax = &norm_impl::SoftmaxRows<simd::Avx512Vec>;
}

}  // namespace visionserve::engine::kernels::internal
