#include "engine/kernels/pooling_impl.h"
#include "engine/kernels/pooling_kernels.h"
#include "engine/kernels/simd_avx512.h"

namespace visionserve::engine::kernels::internal {

void FillPoolingKernelsAvx512(PoolingKernelSet* set) {
  set->gavgpool = &pooling_impl::GlobalAvgPool<simd::Avx512Vec>;
  set->maxpool = &pooling_impl::MaxPool<simd::Avx512Vec>;
}

}  // namespace visionserve::engine::kernels::internal
