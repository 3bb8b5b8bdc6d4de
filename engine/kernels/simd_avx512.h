#pragma once

// Internal to engine/kernels: the AVX-512 vector type the templated kernel bodies
// (vector_math.h, *_impl.h) are instantiated with. Include only from files compiled with the
// AVX-512 flags (*_avx512.cc); the rest of the engine reaches those kernels through dispatch
// tables.
//
// Every vector wrapper (simd_avx2.h, simd_portable.h) has the same static interface:
//   F                 the vector type; kLanes floats
//   Cmp               a lane mask produced by comparisons
//   Tail              a partial-vector descriptor for the first n ≤ kLanes lanes (MakeTail(n))
//   kFma              whether Fma is fused (one rounding)
//   Load/Store        unaligned full vectors
//   MakeTail/LoadTail/StoreTail
//                     partial vectors: LoadTail zero-fills the other lanes and never touches
//                     memory past the n floats; StoreTail writes only n floats;
//                     ZeroPastTail(v, t) zeroes the lanes from n on
//   Min(a, b)/Max(a, b)
//                     x86 semantics: b when either is NaN (kernels pass the value that must
//                     propagate NaN as b)
//   Recip(d)          1/d to within ~1 ulp for normal d > 0
//   Shl23(v)          reinterprets v as int32 lanes, shifts left by 23 (exponent construction)

#include <immintrin.h>

#include <cstdint>

namespace visionserve::engine::kernels::simd {

struct Avx512Vec {
  using F = __m512;
  using Cmp = __mmask16;
  using Tail = __mmask16;
  static constexpr int kLanes = 16;
  static constexpr bool kFma = true;

  static F Zero() { return _mm512_setzero_ps(); }
  static F Set(float v) { return _mm512_set1_ps(v); }
  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static Tail MakeTail(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static F LoadTail(const float* p, Tail t) { return _mm512_maskz_loadu_ps(t, p); }
  static void StoreTail(float* p, F v, Tail t) { _mm512_mask_storeu_ps(p, t, v); }
  static F ZeroPastTail(F v, Tail t) { return _mm512_maskz_mov_ps(t, v); }

  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }    // a·b + c
  static F Fnma(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }  // c − a·b
  // The all-lanes masked forms compile to the plain instructions; the unmasked intrinsics trip
  // GCC 12's -Wmaybe-uninitialized on their undefined pass-through operand.
  static F Min(F a, F b) { return _mm512_mask_min_ps(b, 0xFFFF, a, b); }
  static F Max(F a, F b) { return _mm512_mask_max_ps(b, 0xFFFF, a, b); }
  static F Abs(F a) {
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7FFFFFFF)));
  }
  static F Shl23(F a) {
    return _mm512_castsi512_ps(
        _mm512_mask_slli_epi32(_mm512_castps_si512(a), 0xFFFF, _mm512_castps_si512(a), 23));
  }
  static F Recip(F d) {
    const F r = _mm512_mask_rcp14_ps(d, 0xFFFF, d);  // 2^-14 relative; one Newton step squares it
    return Fma(r, Fnma(d, r, Set(1.f)), r);
  }
  static F Sqrt(F a) { return _mm512_mask_sqrt_ps(a, 0xFFFF, a); }

  static Cmp Lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static Cmp Le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static Cmp Gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static Cmp IsNan(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static Cmp Or(Cmp a, Cmp b) { return static_cast<Cmp>(a | b); }
  static F Select(Cmp m, F if_true, F if_false) {
    return _mm512_mask_blend_ps(m, if_false, if_true);
  }

  static float ReduceAdd(F v) {
    const __m256 lo = _mm512_maskz_extractf32x8_ps(0xFF, v, 0);
    const __m256 s8 = _mm256_add_ps(lo, _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float ReduceMax(F v) {
    const __m256 lo = _mm512_maskz_extractf32x8_ps(0xFF, v, 0);
    const __m256 s8 = _mm256_max_ps(lo, _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace visionserve::engine::kernels::simd
