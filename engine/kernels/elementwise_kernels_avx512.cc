#include "engine/kernels/elementwise_impl.h"
#include "engine/kernels/elementwise_kernels.h"
#include "engine/kernels/simd_avx512.h"

namespace visionserve::engine::kernels::internal {

void FillElementwiseKernelsAvx512(ElementwiseKernelSet* set) {
  set->vadd = &elementwise_impl::Vadd<simd::Avx512Vec>;
  set->vmulc = &elementwise_impl::Vmulc<simd::Avx512Vec>;
}

}  // namespace visionserve::engine::kernels::internal
