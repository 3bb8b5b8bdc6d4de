#include "engine/kernels/squeeze_excite_kernels.h"

#include "engine/kernels/activation_kernels.h"
#include "engine/kernels/simd_portable.h"
#include "engine/kernels/squeeze_excite_impl.h"

namespace visionserve::engine::kernels {

SqueezeExciteKernel GetSqueezeExciteKernel(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return {internal::SqueezeExciteFcAvx512(), "f32_se_fc__avx512"};
    case Isa::kAvx2:
      return {internal::SqueezeExciteFcAvx2(), "f32_se_fc__avx2"};
    case Isa::kPortable:
      break;
  }
  return {&se_impl::SqueezeExciteFc<simd::PortableVec>, "f32_se_fc__portable"};
}

void SqueezeExciteFcRef(const SqueezeExciteFc& fc, const float* pooled, float* hidden,
                        float* gate) {
  const int64_t c = fc.channels, s = fc.squeeze_channels;
  for (int64_t j = 0; j < s; ++j) {
    double acc = fc.b1[j];
    for (int64_t i = 0; i < c; ++i) acc += double{fc.w1[j * c + i]} * pooled[i];
    const float v = static_cast<float>(acc);
    ActivationRef(fc.inner, &v, hidden + j, 1);
  }
  for (int64_t i = 0; i < c; ++i) {
    double acc = fc.b2[i];
    for (int64_t j = 0; j < s; ++j) acc += double{fc.w2t[j * c + i]} * hidden[j];
    const float v = static_cast<float>(acc);
    ActivationRef(fc.gate, &v, gate + i, 1);
  }
}

}  // namespace visionserve::engine::kernels
