#include "server/preprocess/half.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "server/preprocess/half_kernels.h"

namespace visionserve::preprocess {

float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // Inf, or NaN keeping its payload
  } else if (exponent != 0) {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;  // ±0
  } else {
    // Subnormal: mantissa × 2^-24, normal as a float. Shift the leading one into place.
    int shift = 0;
    uint32_t m = mantissa;
    while ((m & 0x400u) == 0) {
      m <<= 1;
      ++shift;
    }
    bits = sign | ((127 - 15 + 1 - shift) << 23) | ((m & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

uint16_t FloatToHalfBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t magnitude = x & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {  // Inf stays Inf; NaN stays a (quiet) NaN
    return sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u : 0u);
  }
  if (magnitude < 0x38800000u) {  // below 2^-14: a subnormal half (or zero), in units of 2^-24
    float a;
    std::memcpy(&a, &magnitude, sizeof(a));
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));  // ties to even
  }
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // rounds past 65504
  uint32_t h = ((magnitude >> 23) - 127 + 15) << 10 | ((magnitude & 0x7fffffu) >> 13);
  const uint32_t rest = magnitude & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) != 0)) ++h;  // a carry bumps the exponent
  return static_cast<uint16_t>(sign | h);
}

std::string FloatsToHalfBytes(std::span<const float> values) {
  std::string out(values.size() * 2, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t h = FloatToHalfBits(values[i]);
    out[2 * i] = static_cast<char>(h & 0xff);
    out[2 * i + 1] = static_cast<char>(h >> 8);
  }
  return out;
}

int64_t HalfToFloatRef(const uint8_t* src, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = HalfBitsAt(src, i);
    if ((h & 0x7c00u) == 0x7c00u) return static_cast<int64_t>(i);
    out[i] = HalfBitsToFloat(h);
  }
  return -1;
}

int64_t HalfToFloat(engine::Isa isa, const uint8_t* src, size_t n, float* out) {
  static const engine::Isa best = engine::DetectIsa();
  if (std::min(isa, best) >= engine::Isa::kAvx2) return HalfToFloatAvx2(src, n, out);
  return HalfToFloatRef(src, n, out);
}

int64_t HalfToFloat(const uint8_t* src, size_t n, float* out) {
  static const engine::Isa isa = engine::DefaultIsa();
  return HalfToFloat(isa, src, n, out);
}

}  // namespace visionserve::preprocess
