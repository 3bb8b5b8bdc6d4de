#pragma once

// Internal to engine/kernels: the AVX2+FMA vector type for the templated kernel bodies. Include
// only from files compiled with the AVX2 flags (*_avx2.cc). Interface: see simd_avx512.h.

#include <immintrin.h>

#include <cstdint>

namespace visionserve::engine::kernels::simd {

struct Avx2Vec {
  using F = __m256;
  using Cmp = __m256;
  using Tail = __m256i;
  static constexpr int kLanes = 8;
  static constexpr bool kFma = true;

  static F Zero() { return _mm256_setzero_ps(); }
  static F Set(float v) { return _mm256_set1_ps(v); }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static Tail MakeTail(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static F LoadTail(const float* p, Tail t) { return _mm256_maskload_ps(p, t); }
  static void StoreTail(float* p, F v, Tail t) { _mm256_maskstore_ps(p, t, v); }
  static F ZeroPastTail(F v, Tail t) { return _mm256_and_ps(v, _mm256_castsi256_ps(t)); }

  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F Fnma(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F Min(F a, F b) { return _mm256_min_ps(a, b); }
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  static F Abs(F a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF))); }
  static F Shl23(F a) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(a), 23)); }
  static F Recip(F d) {
    F r = _mm256_rcp_ps(d);  // 1.5·2^-12 relative; two Newton steps
    r = Fma(r, Fnma(d, r, Set(1.f)), r);
    return Fma(r, Fnma(d, r, Set(1.f)), r);
  }
  static F Sqrt(F a) { return _mm256_sqrt_ps(a); }

  static Cmp Lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static Cmp Le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static Cmp Gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static Cmp IsNan(F a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static Cmp Or(Cmp a, Cmp b) { return _mm256_or_ps(a, b); }
  static F Select(Cmp m, F if_true, F if_false) { return _mm256_blendv_ps(if_false, if_true, m); }

  static float ReduceAdd(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float ReduceMax(F v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace visionserve::engine::kernels::simd
