#include "engine/kernels/normalization_impl.h"
#include "engine/kernels/normalization_kernels.h"
#include "engine/kernels/simd_avx2.h"

namespace visionserve::engine::kernels::internal {

void FillNormalizationKernelsAvx2(NormalizationKernelSet* set) {
  set->layernorm = &norm_impl::NormalizePixels<simd::Avx2Vec>;
  set->softmax = &norm_impl::SoftmaxRows<simd::Avx2Vec>;
}

}  // namespace visionserve::engine::kernels::internal
