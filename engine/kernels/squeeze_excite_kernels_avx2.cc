#include "engine/kernels/simd_avx2.h"
#include "engine/kernels/squeeze_excite_impl.h"
#include "engine/kernels/squeeze_excite_kernels.h"

namespace visionserve::engine::kernels::internal {

SqueezeExciteFcFn SqueezeExciteFcAvx2() { return &se_impl::SqueezeExciteFc<simd::Avx2Vec>; }

}  // namespace visionserve::engine::kernels::internal
