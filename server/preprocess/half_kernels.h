#pragma once

// Vector kernels behind HalfToFloat (server/preprocess/half.h); each lives in a file compiled
// for its instruction set and is only called when the CPU has it.

#include <cstddef>
#include <cstdint>

namespace visionserve::preprocess {

// F16C + AVX2: 16 halves per step; same contract as HalfToFloatRef.
int64_t HalfToFloatAvx2(const uint8_t* src, size_t n, float* out);

}  // namespace visionserve::preprocess
