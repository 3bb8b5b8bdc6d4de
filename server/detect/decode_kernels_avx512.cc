// AVX-512 class argmax: anchors in lanes (4 x 16 per step), classes as the outer loop.
#include "server/detect/decode_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <limits>

namespace visionserve::detect::internal {

namespace {

// max_ps(a, b) = a > b ? a : b, min_ps(a, b) = a < b ? a : b. The maskz forms are the same
// instructions; they avoid a GCC 12 false -Wmaybe-uninitialized in the plain intrinsics.
inline __m512 Max(__m512 a, __m512 b) { return _mm512_maskz_max_ps(0xFFFF, a, b); }

struct Emitter {
  __m512 threshold;
  __m512i iota;
  int32_t* anchor;
  float* score;
  int32_t* cls;
  int64_t count = 0;

  void Emit(int64_t base, __m512 best, __m512i best_class, __mmask16 valid) {
    const __mmask16 m = _mm512_mask_cmp_ps_mask(valid, best, threshold, _CMP_GT_OQ);
    if (m == 0) return;
    const __m512i ids = _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int32_t>(base)));
    _mm512_mask_compressstoreu_epi32(anchor + count, m, ids);
    _mm512_mask_compressstoreu_ps(score + count, m, best);
    _mm512_mask_compressstoreu_epi32(cls + count, m, best_class);
    count += __builtin_popcount(m);
  }
};

// One class step for one vector of anchors: strictly greater wins, so the first maximum stays
// and NaN never wins (max_ps(v, b) is v > b ? v : b).
inline void Step(__m512 v, __m512i c, __m512& best, __m512i& best_class) {
  const __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
  best = Max(v, best);
  best_class = _mm512_mask_mov_epi32(best_class, gt, c);
}

}  // namespace

int64_t ClassArgmaxAvx512(const float* scores, int64_t num_anchors, int64_t num_classes,
                          int64_t class_stride, float threshold, int32_t* anchor, float* score,
                          int32_t* cls) {
  Emitter e{_mm512_set1_ps(threshold),
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), anchor, score,
            cls};
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t a = 0;
  for (; a + 64 <= num_anchors; a += 64) {
    __m512 b0 = ninf, b1 = ninf, b2 = ninf, b3 = ninf;
    __m512i i0 = _mm512_setzero_si512(), i1 = i0, i2 = i0, i3 = i0;
    const float* p = scores + a;
    for (int64_t c = 0; c < num_classes; ++c, p += class_stride) {
      const __m512i ci = _mm512_set1_epi32(static_cast<int32_t>(c));
      Step(_mm512_loadu_ps(p), ci, b0, i0);
      Step(_mm512_loadu_ps(p + 16), ci, b1, i1);
      Step(_mm512_loadu_ps(p + 32), ci, b2, i2);
      Step(_mm512_loadu_ps(p + 48), ci, b3, i3);
    }
    e.Emit(a, b0, i0, 0xFFFF);
    e.Emit(a + 16, b1, i1, 0xFFFF);
    e.Emit(a + 32, b2, i2, 0xFFFF);
    e.Emit(a + 48, b3, i3, 0xFFFF);
  }
  for (; a < num_anchors; a += 16) {
    const int64_t left = num_anchors - a;
    const __mmask16 valid =
        left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    __m512 b = ninf;
    __m512i i = _mm512_setzero_si512();
    const float* p = scores + a;
    for (int64_t c = 0; c < num_classes; ++c, p += class_stride) {
      Step(_mm512_maskz_loadu_ps(valid, p), _mm512_set1_epi32(static_cast<int32_t>(c)), b, i);
    }
    e.Emit(a, b, i, valid);
  }
  return e.count;
}

}  // namespace visionserve::detect::internal

#endif  // defined(__x86_64__)
