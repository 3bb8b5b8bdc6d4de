#include "engine/kernels/dwconv.h"
#include "engine/kernels/dwconv_impl.h"
#include "engine/kernels/simd_avx2.h"

namespace visionserve::engine::kernels::internal {

void FillDwconvKernelsAvx2(DwconvKernelSet* set) {
  using V = simd::Avx2Vec;
  set->fn[0] = &dwconv_impl::Dwconv<V, 3>;
  set->fn[1] = &dwconv_impl::Dwconv<V, 5>;
  set->fn[2] = &dwconv_impl::Dwconv<V, 7>;
  set->fn[3] = &dwconv_impl::Dwconv<V, 0>;
}

}  // namespace visionserve::engine::kernels::internal
