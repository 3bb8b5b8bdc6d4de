#include "engine/kernels/dwconv.h"
#include "engine/kernels/dwconv_impl.h"
#include "engine/kernels/simd_avx512.h"

namespace visionserve::engine::kernels::internal {

void FillDwconvKernelsAvx512(DwconvKernelSet* set) {
  using V = simd::Avx512Vec;
  set->fn[0] = &dwconv_impl::Dwconv<V, 3>;
  set->fn[1] = &dwconv_impl::Dwconv<V, 5>;
  set->fn[2] = &dwconv_impl::Dwconv<V, 7>;
  set->fn[3] = &dwconv_impl::Dwconv<V, 0>;
}

}  // namespace visionserve::engine::kernels::internal
