// AVX-512 NMS filter: 16 candidates per step, survivors compacted with vcompressps.
#include "server/detect/nms_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace visionserve::detect::internal {

namespace {

// max_ps(a, b) = a > b ? a : b, min_ps(a, b) = a < b ? a : b. The maskz forms are the same
// instructions; they avoid a GCC 12 false -Wmaybe-uninitialized in the plain intrinsics.
inline __m512 Max(__m512 a, __m512 b) { return _mm512_maskz_max_ps(0xFFFF, a, b); }
inline __m512 Min(__m512 a, __m512 b) { return _mm512_maskz_min_ps(0xFFFF, a, b); }

}  // namespace

int64_t NmsFilterAvx512(const NmsRefBox& ref, float threshold, const NmsCandidates& c, int64_t n) {
  const __m512 rx1 = _mm512_set1_ps(ref.x1);
  const __m512 ry1 = _mm512_set1_ps(ref.y1);
  const __m512 rx2 = _mm512_set1_ps(ref.x2);
  const __m512 ry2 = _mm512_set1_ps(ref.y2);
  const __m512 rarea = _mm512_set1_ps(ref.area);
  const __m512 thr = _mm512_set1_ps(threshold);
  const __m512 zero = _mm512_setzero_ps();
  int64_t kept = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t left = n - i;
    const __mmask16 valid =
        left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    const __m512 bx1 = _mm512_maskz_loadu_ps(valid, c.x1 + i);
    const __m512 by1 = _mm512_maskz_loadu_ps(valid, c.y1 + i);
    const __m512 bx2 = _mm512_maskz_loadu_ps(valid, c.x2 + i);
    const __m512 by2 = _mm512_maskz_loadu_ps(valid, c.y2 + i);
    const __m512 barea = _mm512_maskz_loadu_ps(valid, c.area + i);
    // max_ps(a, b) is a > b ? a : b and min_ps(a, b) is a < b ? a : b: with these operand orders
    // they equal std::max(ref, b), std::min(ref, b) and std::max(0.f, d) for every input.
    const __m512 xx1 = Max(bx1, rx1);
    const __m512 yy1 = Max(by1, ry1);
    const __m512 xx2 = Min(bx2, rx2);
    const __m512 yy2 = Min(by2, ry2);
    const __m512 w = Max(_mm512_sub_ps(xx2, xx1), zero);
    const __m512 h = Max(_mm512_sub_ps(yy2, yy1), zero);
    const __m512 inter = _mm512_mul_ps(w, h);
    const __m512 uni = _mm512_sub_ps(_mm512_add_ps(rarea, barea), inter);
    const __m512 ovr = _mm512_div_ps(inter, uni);
    const __mmask16 sup = _mm512_mask_cmp_ps_mask(valid, ovr, thr, _CMP_GT_OQ);
    const __mmask16 keep = static_cast<__mmask16>(valid & ~sup);
    const int count = __builtin_popcount(keep);
    if (keep == valid && kept == i) {  // nothing removed so far: already in place
      kept += count;
      continue;
    }
    if (count == 0) continue;
    // Compress in registers, then store only `count` lanes: kept <= i, so this never overwrites
    // candidates not yet loaded, and never writes past n.
    const __mmask16 out = static_cast<__mmask16>((1u << count) - 1);
    _mm512_mask_storeu_ps(c.x1 + kept, out, _mm512_maskz_compress_ps(keep, bx1));
    _mm512_mask_storeu_ps(c.y1 + kept, out, _mm512_maskz_compress_ps(keep, by1));
    _mm512_mask_storeu_ps(c.x2 + kept, out, _mm512_maskz_compress_ps(keep, bx2));
    _mm512_mask_storeu_ps(c.y2 + kept, out, _mm512_maskz_compress_ps(keep, by2));
    _mm512_mask_storeu_ps(c.area + kept, out, _mm512_maskz_compress_ps(keep, barea));
    const __m512i ids = _mm512_maskz_loadu_epi32(valid, c.id + i);
    _mm512_mask_storeu_epi32(c.id + kept, out, _mm512_maskz_compress_epi32(keep, ids));
    kept += count;
  }
  return kept;
}

}  // namespace visionserve::detect::internal

#endif  // defined(__x86_64__)
