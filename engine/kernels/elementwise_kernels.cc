#include "engine/kernels/elementwise_kernels.h"

#include "engine/kernels/activation_kernels.h"
#include "engine/kernels/elementwise_impl.h"
#include "engine/kernels/simd_portable.h"

namespace visionserve::engine::kernels {

namespace {

struct Tables {
  ElementwiseKernels by_isa[3];
};

const Tables& GetTables() {
  static const Tables tables = [] {
    Tables t;
    using V = simd::PortableVec;
    t.by_isa[0] = {&elementwise_impl::Vadd<V>, &elementwise_impl::Vmulc<V>, "f32_vadd__portable",
                   "f32_vmulc__portable"};
    internal::ElementwiseKernelSet avx2, avx512;
    internal::FillElementwiseKernelsAvx2(&avx2);
    internal::FillElementwiseKernelsAvx512(&avx512);
    t.by_isa[1] = {avx2.vadd, avx2.vmulc, "f32_vadd__avx2", "f32_vmulc__avx2"};
    t.by_isa[2] = {avx512.vadd, avx512.vmulc, "f32_vadd__avx512", "f32_vmulc__avx512"};
    return t;
  }();
  return tables;
}

constexpr std::string_view kActivationNames[3][8] = {
    {"f32_vcopy__portable", "f32_vrelu__portable", "f32_vrelu6__portable", "f32_vsilu__portable",
     "f32_vgelu__portable", "f32_vsigmoid__portable", "f32_vhswish__portable",
     "f32_vhsigmoid__portable"},
    {"f32_vcopy__avx2", "f32_vrelu__avx2", "f32_vrelu6__avx2", "f32_vsilu__avx2", "f32_vgelu__avx2",
     "f32_vsigmoid__avx2", "f32_vhswish__avx2", "f32_vhsigmoid__avx2"},
    {"f32_vcopy__avx512", "f32_vrelu__avx512", "f32_vrelu6__avx512", "f32_vsilu__avx512",
     "f32_vgelu__avx512", "f32_vsigmoid__avx512", "f32_vhswish__avx512", "f32_vhsigmoid__avx512"},
};
static_assert(static_cast<int>(Activation::kHardSigmoid) == 7, "one name per activation");

}  // namespace

const ElementwiseKernels& GetElementwiseKernels(Isa isa) {
  return GetTables().by_isa[static_cast<int>(isa)];
}

std::string_view ActivationKernelName(Activation act, Isa isa) {
  return kActivationNames[static_cast<int>(isa)][static_cast<int>(act)];
}

void VaddRef(const float* a, const float* b, float* y, int64_t n, Activation act) {
  for (int64_t i = 0; i < n; ++i) {
    const float sum = static_cast<float>(double{a[i]} + double{b[i]});
    ActivationRef(act, &sum, y + i, 1);
  }
}

void VmulcRef(const float* x, const float* s, float* y, int64_t pixels, int64_t channels) {
  for (int64_t p = 0; p < pixels; ++p) {
    for (int64_t c = 0; c < channels; ++c) {
      y[p * channels + c] = static_cast<float>(double{x[p * channels + c]} * s[c]);
    }
  }
}

}  // namespace visionserve::engine::kernels
