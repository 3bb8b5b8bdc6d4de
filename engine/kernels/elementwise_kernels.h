#pragma once

// Element-wise kernels over contiguous NHWC floats, vectorized per ISA (a masked or partial
// vector for lengths that are not a multiple of the vector width):
//   f32_vadd__<isa>   y = act(a + b)
//   f32_vmulc__<isa>  y[p][c] = x[p][c] · s[c]  (a per-channel scale broadcast over pixels)
// plus the names of the activation kernels of activation_kernels.h (f32_v<act>__<isa>).

#include <cstdint>
#include <string_view>

#include "engine/activation.h"
#include "engine/cpu_features.h"

namespace visionserve::engine::kernels {

// y[i] = act(a[i] + b[i]) for i < n (act as in ActivationRef). y may equal a or b.
using VaddFn = void (*)(const float* a, const float* b, float* y, int64_t n, Activation act);

// y[p·channels + c] = x[p·channels + c] · s[c] for p < pixels, c < channels. y may equal x.
using VmulcFn = void (*)(const float* x, const float* s, float* y, int64_t pixels,
                         int64_t channels);

struct ElementwiseKernels {
  VaddFn vadd = nullptr;
  VmulcFn vmulc = nullptr;
  std::string_view vadd_name;   // "f32_vadd__avx512"
  std::string_view vmulc_name;  // "f32_vmulc__avx512"
};

// The kernels for `isa` (the caller makes sure the CPU supports it).
const ElementwiseKernels& GetElementwiseKernels(Isa isa);

// The name of GetActivationKernel(act, isa), e.g. "f32_vsilu__avx512" ("f32_vcopy__..." for
// kNone).
std::string_view ActivationKernelName(Activation act, Isa isa);

// Plain references (double intermediate, then rounded).
void VaddRef(const float* a, const float* b, float* y, int64_t n, Activation act);
void VmulcRef(const float* x, const float* s, float* y, int64_t pixels, int64_t channels);

namespace internal {
struct ElementwiseKernelSet {
  VaddFn vadd = nullptr;
  VmulcFn vmulc = nullptr;
};
void FillElementwiseKernelsAvx2(ElementwiseKernelSet* set);
void FillElementwiseKernelsAvx512(ElementwiseKernelSet* set);
}  // namespace internal

}  // namespace visionserve::engine::kernels
