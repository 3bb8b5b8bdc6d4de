// AVX2 class argmax: anchors in lanes (4 x 8 per step), classes as the outer loop.
#include "server/detect/decode_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <limits>

namespace visionserve::detect::internal {

namespace {

struct Emitter {
  __m256 threshold;
  int32_t* anchor;
  float* score;
  int32_t* cls;
  int64_t count = 0;

  // Candidates are rare: a movemask, then scalar writes for the set bits only.
  void Emit(int64_t base, __m256 best, __m256i best_class, int valid_bits) {
    int m = _mm256_movemask_ps(_mm256_cmp_ps(best, threshold, _CMP_GT_OQ)) & valid_bits;
    if (m == 0) return;
    alignas(32) float b[8];
    alignas(32) int32_t k[8];
    _mm256_store_ps(b, best);
    _mm256_store_si256(reinterpret_cast<__m256i*>(k), best_class);
    while (m != 0) {
      const int lane = __builtin_ctz(static_cast<unsigned>(m));
      m &= m - 1;
      anchor[count] = static_cast<int32_t>(base + lane);
      score[count] = b[lane];
      cls[count] = k[lane];
      ++count;
    }
  }
};

// Strictly greater wins (first maximum stays, NaN never wins); max_ps(v, b) is v > b ? v : b.
inline void Step(__m256 v, __m256 c, __m256& best, __m256& best_class) {
  const __m256 gt = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
  best = _mm256_max_ps(v, best);
  best_class = _mm256_blendv_ps(best_class, c, gt);
}

}  // namespace

int64_t ClassArgmaxAvx2(const float* scores, int64_t num_anchors, int64_t num_classes,
                        int64_t class_stride, float threshold, int32_t* anchor, float* score,
                        int32_t* cls) {
  Emitter e{_mm256_set1_ps(threshold), anchor, score, cls};
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  // Class ids ride in float registers as int32 bit patterns (blendv_ps moves bits untouched).
  int64_t a = 0;
  for (; a + 32 <= num_anchors; a += 32) {
    __m256 b0 = ninf, b1 = ninf, b2 = ninf, b3 = ninf;
    __m256 i0 = _mm256_setzero_ps(), i1 = i0, i2 = i0, i3 = i0;
    const float* p = scores + a;
    for (int64_t c = 0; c < num_classes; ++c, p += class_stride) {
      const __m256 ci = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int32_t>(c)));
      Step(_mm256_loadu_ps(p), ci, b0, i0);
      Step(_mm256_loadu_ps(p + 8), ci, b1, i1);
      Step(_mm256_loadu_ps(p + 16), ci, b2, i2);
      Step(_mm256_loadu_ps(p + 24), ci, b3, i3);
    }
    e.Emit(a, b0, _mm256_castps_si256(i0), 0xFF);
    e.Emit(a + 8, b1, _mm256_castps_si256(i1), 0xFF);
    e.Emit(a + 16, b2, _mm256_castps_si256(i2), 0xFF);
    e.Emit(a + 24, b3, _mm256_castps_si256(i3), 0xFF);
  }
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (; a < num_anchors; a += 8) {
    const int left = num_anchors - a >= 8 ? 8 : static_cast<int>(num_anchors - a);
    const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lanes);
    __m256 b = ninf;
    __m256 i = _mm256_setzero_ps();
    const float* p = scores + a;
    for (int64_t c = 0; c < num_classes; ++c, p += class_stride) {
      Step(_mm256_maskload_ps(p, valid),
           _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int32_t>(c))), b, i);
    }
    e.Emit(a, b, _mm256_castps_si256(i), (1 << left) - 1);
  }
  return e.count;
}

}  // namespace visionserve::detect::internal

#endif  // defined(__x86_64__)
