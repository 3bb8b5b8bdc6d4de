#include "engine/kernels/elementwise_impl.h"
#include "engine/kernels/elementwise_kernels.h"
#include "engine/kernels/simd_avx2.h"

namespace visionserve::engine::kernels::internal {

void FillElementwiseKernelsAvx2(ElementwiseKernelSet* set) {
  set->vadd = &elementwise_impl::Vadd<simd::Avx2Vec>;
  set->vmulc = &elementwise_impl::Vmulc<simd::Avx2Vec>;
}

}  // namespace visionserve::engine::kernels::internal
