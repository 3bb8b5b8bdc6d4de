#pragma once

// Run-time instruction-set choice for the detection postprocessing kernels: the engine's levels
// and rules (engine/cpu_features.h, a standalone library, so server/detect does not depend on the
// engine): the best level the CPU supports, lowered by VISIONSERVE_ISA=portable|avx2|avx512.

#include "engine/cpu_features.h"

namespace visionserve::detect {

using Isa = engine::Isa;
using engine::DefaultIsa;
using engine::DetectIsa;
using engine::IsaName;

// `isa` clamped to what this CPU supports: kernels above it would fault.
Isa ClampIsa(Isa isa);

}  // namespace visionserve::detect
