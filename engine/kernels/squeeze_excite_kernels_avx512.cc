#include "engine/kernels/simd_avx512.h"
#include "engine/kernels/squeeze_excite_impl.h"
#include "engine/kernels/squeeze_excite_kernels.h"

namespace visionserve::engine::kernels::internal {

SqueezeExciteFcFn SqueezeExciteFcAvx512() { return &se_impl::SqueezeExciteFc<simd::Avx512Vec>; }

}  // namespace visionserve::engine::kernels::internal
