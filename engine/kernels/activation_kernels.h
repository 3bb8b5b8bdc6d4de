#pragma once

// Element-wise activation kernels over contiguous floats, vectorized per ISA.
// Documented max errors (vs. the double-precision definitions, over all finite floats):
// see activation_kernels.cc; the differential tests enforce them.

#include <cstdint>

#include "engine/activation.h"
#include "engine/cpu_features.h"

namespace visionserve::engine::kernels {

// y[i] = act(x[i]) for i < n; y may equal x (in place).
using ActivationFn = void (*)(const float* x, float* y, int64_t n);

// The kernel for `act` at `isa` (never null; kNone copies unless x == y).
ActivationFn GetActivationKernel(Activation act, Isa isa);

// Plain scalar reference, using libm (std::exp, std::erf).
void ActivationRef(Activation act, const float* x, float* y, int64_t n);

}  // namespace visionserve::engine::kernels
