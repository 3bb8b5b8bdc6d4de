#pragma once

// Internal to engine/kernels: the vector type of the portable kernels, compiled without ISA
// flags. On x86-64 it is SSE2 (part of the base ABI); elsewhere one float per "vector".
// Interface: see simd_avx512.h. Include only from the portable kernel files (not *_avx2.cc or
// *_avx512.cc), so each instantiation is compiled with one set of flags.

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace visionserve::engine::kernels::simd {

#if defined(__SSE2__)

struct PortableVec {
  using F = __m128;
  using Cmp = __m128;
  using Tail = int64_t;  // lanes in use
  static constexpr int kLanes = 4;
  static constexpr bool kFma = false;

  static F Zero() { return _mm_setzero_ps(); }
  static F Set(float v) { return _mm_set1_ps(v); }
  static F Load(const float* p) { return _mm_loadu_ps(p); }
  static void Store(float* p, F v) { _mm_storeu_ps(p, v); }
  static Tail MakeTail(int64_t n) { return n; }
  static F LoadTail(const float* p, Tail n) {
    float buf[4] = {0.f, 0.f, 0.f, 0.f};
    std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(float));
    return _mm_loadu_ps(buf);
  }
  static void StoreTail(float* p, F v, Tail n) {
    float buf[4];
    _mm_storeu_ps(buf, v);
    std::memcpy(p, buf, static_cast<size_t>(n) * sizeof(float));
  }
  static F ZeroPastTail(F v, Tail n) {
    float buf[4];
    _mm_storeu_ps(buf, v);
    for (int64_t i = n; i < 4; ++i) buf[i] = 0.f;
    return _mm_loadu_ps(buf);
  }

  static F Add(F a, F b) { return _mm_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }  // two roundings
  static F Fnma(F a, F b, F c) { return _mm_sub_ps(c, _mm_mul_ps(a, b)); }
  static F Min(F a, F b) { return _mm_min_ps(a, b); }
  static F Max(F a, F b) { return _mm_max_ps(a, b); }
  static F Abs(F a) { return _mm_and_ps(a, _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF))); }
  static F Shl23(F a) { return _mm_castsi128_ps(_mm_slli_epi32(_mm_castps_si128(a), 23)); }
  static F Recip(F d) { return _mm_div_ps(_mm_set1_ps(1.f), d); }
  static F Sqrt(F a) { return _mm_sqrt_ps(a); }

  static Cmp Lt(F a, F b) { return _mm_cmplt_ps(a, b); }
  static Cmp Le(F a, F b) { return _mm_cmple_ps(a, b); }
  static Cmp Gt(F a, F b) { return _mm_cmpgt_ps(a, b); }
  static Cmp IsNan(F a) { return _mm_cmpunord_ps(a, a); }
  static Cmp Or(Cmp a, Cmp b) { return _mm_or_ps(a, b); }
  static F Select(Cmp m, F if_true, F if_false) {
    return _mm_or_ps(_mm_and_ps(m, if_true), _mm_andnot_ps(m, if_false));
  }

  static float ReduceAdd(F v) {
    F s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static float ReduceMax(F v) {
    F s = _mm_max_ps(v, _mm_movehl_ps(v, v));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
};

#else  // !__SSE2__

struct PortableVec {
  using F = float;
  using Cmp = bool;
  using Tail = int64_t;
  static constexpr int kLanes = 1;
  static constexpr bool kFma = false;

  static F Zero() { return 0.f; }
  static F Set(float v) { return v; }
  static F Load(const float* p) { return *p; }
  static void Store(float* p, F v) { *p = v; }
  static Tail MakeTail(int64_t n) { return n; }
  static F LoadTail(const float* p, Tail n) { return n > 0 ? *p : 0.f; }
  static void StoreTail(float* p, F v, Tail n) {
    if (n > 0) *p = v;
  }
  static F ZeroPastTail(F v, Tail n) { return n > 0 ? v : 0.f; }

  static F Add(F a, F b) { return a + b; }
  static F Sub(F a, F b) { return a - b; }
  static F Mul(F a, F b) { return a * b; }
  static F Fma(F a, F b, F c) {
    const F p = a * b;  // a separate statement: no contraction into a fused multiply-add
    return p + c;
  }
  static F Fnma(F a, F b, F c) {
    const F p = a * b;
    return c - p;
  }
  static F Min(F a, F b) { return a < b ? a : b; }
  static F Max(F a, F b) { return a > b ? a : b; }
  static F Abs(F a) {
    uint32_t u;
    std::memcpy(&u, &a, 4);
    u &= 0x7FFFFFFFu;
    std::memcpy(&a, &u, 4);
    return a;
  }
  static F Shl23(F a) {
    uint32_t u;
    std::memcpy(&u, &a, 4);
    u <<= 23;
    std::memcpy(&a, &u, 4);
    return a;
  }
  static F Recip(F d) { return 1.f / d; }
  static F Sqrt(F a) { return __builtin_sqrtf(a); }

  static Cmp Lt(F a, F b) { return a < b; }
  static Cmp Le(F a, F b) { return a <= b; }
  static Cmp Gt(F a, F b) { return a > b; }
  static Cmp IsNan(F a) { return a != a; }
  static Cmp Or(Cmp a, Cmp b) { return a || b; }
  static F Select(Cmp m, F if_true, F if_false) { return m ? if_true : if_false; }

  static float ReduceAdd(F v) { return v; }
  static float ReduceMax(F v) { return v; }
};

#endif  // __SSE2__

}  // namespace visionserve::engine::kernels::simd
