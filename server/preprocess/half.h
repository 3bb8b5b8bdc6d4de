#pragma once

// IEEE 754 binary16 ("half", FLOAT16 tensors on the wire) to float32, with the finiteness check
// FLOAT32 inputs get. A half is exactly representable as a float, so every path gives the same
// bits: the F16C path (every AVX2 CPU has it) and the plain one.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "engine/cpu_features.h"

namespace visionserve::preprocess {

// Converts `n` little-endian halves at `src` (any alignment) into `out`. Returns the index of
// the first Inf or NaN (out is then unspecified), or -1 when every value is finite.
int64_t HalfToFloat(const uint8_t* src, size_t n, float* out);

// The same with an explicit kernel set (clamped to what the CPU has), for tests and benchmarks.
int64_t HalfToFloat(engine::Isa isa, const uint8_t* src, size_t n, float* out);

// Plain C++, one value at a time: the reference the vector paths are tested against.
int64_t HalfToFloatRef(const uint8_t* src, size_t n, float* out);

// The bits of little-endian half `i` at `src` (any alignment).
inline uint16_t HalfBitsAt(const uint8_t* src, size_t i) {
  return static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8));
}
// The float32 value of one half's bits (Inf and NaN convert too).
float HalfBitsToFloat(uint16_t h);
// The half nearest to `f` (ties to even; beyond ±65504 rounds to ±Inf), for clients that send
// FLOAT16 tensors.
uint16_t FloatToHalfBits(float f);
// `values` as little-endian halves: a FLOAT16 tensor's data.
std::string FloatsToHalfBytes(std::span<const float> values);

}  // namespace visionserve::preprocess
