#include "engine/kernels/pooling_impl.h"
#include "engine/kernels/pooling_kernels.h"
#include "engine/kernels/simd_avx2.h"

namespace visionserve::engine::kernels::internal {

void FillPoolingKernelsAvx2(PoolingKernelSet* set) {
  set->gavgpool = &pooling_impl::GlobalAvgPool<simd::Avx2Vec>;
  set->maxpool = &pooling_impl::MaxPool<simd::Avx2Vec>;
}

}  // namespace visionserve::engine::kernels::internal
