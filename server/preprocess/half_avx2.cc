// Compiled with AVX2 + F16C (see visionserve_isa_flags).
#include <immintrin.h>

#include "server/preprocess/half.h"
#include "server/preprocess/half_kernels.h"

namespace visionserve::preprocess {

int64_t HalfToFloatAvx2(const uint8_t* src, size_t n, float* out) {
  const __m256i exponent = _mm256_set1_epi16(0x7c00);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i));
    // Exponent bits all ones: Inf or NaN. The reference names the first one.
    const __m256i bad = _mm256_cmpeq_epi16(_mm256_and_si256(h, exponent), exponent);
    if (!_mm256_testz_si256(bad, bad)) {
      return static_cast<int64_t>(i) + HalfToFloatRef(src + 2 * i, n - i, out + i);
    }
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm256_castsi256_si128(h)));
    _mm256_storeu_ps(out + i + 8, _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)));
  }
  const int64_t tail = HalfToFloatRef(src + 2 * i, n - i, out + i);
  return tail < 0 ? -1 : static_cast<int64_t>(i) + tail;
}

}  // namespace visionserve::preprocess
