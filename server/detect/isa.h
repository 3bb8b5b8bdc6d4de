#pragma once

// Run-time instruction-set choice for the detection postprocessing kernels.
//
// server/detect depends on absl only (no engine), so it carries its own copy of the engine's
// three levels and the same rules (engine/cpu_features.h): the best level the CPU supports,
// lowered by VISIONSERVE_ISA=portable|avx2|avx512. The enumerators have the engine's values, so
// a caller holding an engine::Isa can pass static_cast<detect::Isa>(engine_isa).

#include <string_view>

namespace visionserve::detect {

enum class Isa : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

std::string_view IsaName(Isa isa);

// The best level this CPU supports (AVX2 needs AVX2+FMA; AVX-512 needs F, BW, DQ, VL).
Isa DetectIsa();

// DetectIsa(), lowered by VISIONSERVE_ISA if set (unknown values are ignored). Computed once.
Isa DefaultIsa();

// `isa` clamped to what this CPU supports: kernels above it would fault.
Isa ClampIsa(Isa isa);

}  // namespace visionserve::detect
