// AVX2 NMS filter: 8 candidates per step, survivors compacted with a permutation table.
#include "server/detect/nms_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <array>
#include <cstring>

namespace visionserve::detect::internal {

namespace {

// For each 8-bit keep mask, the lane indices of its set bits, packed to the front.
constexpr std::array<uint64_t, 256> MakeCompressTable() {
  std::array<uint64_t, 256> table{};
  for (int mask = 0; mask < 256; ++mask) {
    uint64_t packed = 0;
    int out = 0;
    for (int lane = 0; lane < 8; ++lane) {
      if (mask & (1 << lane)) packed |= static_cast<uint64_t>(lane) << (8 * out++);
    }
    table[mask] = packed;
  }
  return table;
}
constexpr std::array<uint64_t, 256> kCompressTable = MakeCompressTable();

// Lane k is all-ones iff k < count.
inline __m256i FirstLanes(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

}  // namespace

int64_t NmsFilterAvx2(const NmsRefBox& ref, float threshold, const NmsCandidates& c, int64_t n) {
  const __m256 rx1 = _mm256_set1_ps(ref.x1);
  const __m256 ry1 = _mm256_set1_ps(ref.y1);
  const __m256 rx2 = _mm256_set1_ps(ref.x2);
  const __m256 ry2 = _mm256_set1_ps(ref.y2);
  const __m256 rarea = _mm256_set1_ps(ref.area);
  const __m256 thr = _mm256_set1_ps(threshold);
  const __m256 zero = _mm256_setzero_ps();
  int64_t kept = 0;
  for (int64_t i = 0; i < n; i += 8) {
    const int left = n - i >= 8 ? 8 : static_cast<int>(n - i);
    const __m256i valid = FirstLanes(left);
    const __m256 bx1 = _mm256_maskload_ps(c.x1 + i, valid);
    const __m256 by1 = _mm256_maskload_ps(c.y1 + i, valid);
    const __m256 bx2 = _mm256_maskload_ps(c.x2 + i, valid);
    const __m256 by2 = _mm256_maskload_ps(c.y2 + i, valid);
    const __m256 barea = _mm256_maskload_ps(c.area + i, valid);
    // Operand orders as in the AVX-512 kernel: equal to std::max/std::min for every input.
    const __m256 xx1 = _mm256_max_ps(bx1, rx1);
    const __m256 yy1 = _mm256_max_ps(by1, ry1);
    const __m256 xx2 = _mm256_min_ps(bx2, rx2);
    const __m256 yy2 = _mm256_min_ps(by2, ry2);
    const __m256 w = _mm256_max_ps(_mm256_sub_ps(xx2, xx1), zero);
    const __m256 h = _mm256_max_ps(_mm256_sub_ps(yy2, yy1), zero);
    const __m256 inter = _mm256_mul_ps(w, h);
    const __m256 uni = _mm256_sub_ps(_mm256_add_ps(rarea, barea), inter);
    const __m256 ovr = _mm256_div_ps(inter, uni);
    const int sup = _mm256_movemask_ps(_mm256_cmp_ps(ovr, thr, _CMP_GT_OQ));
    const int valid_bits = (1 << left) - 1;
    const int keep = valid_bits & ~sup;
    const int count = __builtin_popcount(static_cast<unsigned>(keep));
    if (keep == valid_bits && kept == i) {
      kept += count;
      continue;
    }
    if (count == 0) continue;
    const __m256i perm = _mm256_cvtepu8_epi32(
        _mm_cvtsi64_si128(static_cast<long long>(kCompressTable[static_cast<unsigned>(keep)])));
    const __m256i out = FirstLanes(count);
    // kept <= i: the masked stores never touch candidates not yet loaded, nor anything past n.
    _mm256_maskstore_ps(c.x1 + kept, out, _mm256_permutevar8x32_ps(bx1, perm));
    _mm256_maskstore_ps(c.y1 + kept, out, _mm256_permutevar8x32_ps(by1, perm));
    _mm256_maskstore_ps(c.x2 + kept, out, _mm256_permutevar8x32_ps(bx2, perm));
    _mm256_maskstore_ps(c.y2 + kept, out, _mm256_permutevar8x32_ps(by2, perm));
    _mm256_maskstore_ps(c.area + kept, out, _mm256_permutevar8x32_ps(barea, perm));
    const __m256i ids = _mm256_maskload_epi32(c.id + i, valid);
    _mm256_maskstore_epi32(c.id + kept, out, _mm256_permutevar8x32_epi32(ids, perm));
    kept += count;
  }
  return kept;
}

}  // namespace visionserve::detect::internal

#endif  // defined(__x86_64__)
