#pragma once

// Internal to engine/kernels: per-ISA activation kernel tables, filled by the ISA-specific files
// (compiled with their flags) and read by the dispatch in activation_kernels.cc.

#include "engine/activation.h"
#include "engine/kernels/activation_kernels.h"

namespace visionserve::engine::kernels::internal {

inline constexpr int kNumActivations = static_cast<int>(Activation::kHardSigmoid) + 1;

// table[static_cast<int>(act)] = the kernel for `act`.
void FillActivationKernelsAvx2(ActivationFn* table);
void FillActivationKernelsAvx512(ActivationFn* table);

}  // namespace visionserve::engine::kernels::internal
