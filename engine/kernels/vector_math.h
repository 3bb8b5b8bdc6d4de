#pragma once

// Internal to engine/kernels: vectorized elementary functions and activations, written once as
// templates over a vector wrapper V (simd_avx512.h, simd_avx2.h, simd_portable.h) and
// instantiated in each ISA's kernel files. No libm calls: exp is a range reduction plus a
// polynomial, the normal CDF of GELU a polynomial near zero and exp × rational elsewhere.
// Accuracy of each function is documented (and tested) in activation_kernels.cc.

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/activation.h"

namespace visionserve::engine::kernels::vmath {

// e^(z + z_lo) for z ≤ 0 and |z_lo| ≤ ulp(z) (z_lo carries extra precision of the argument).
// Results that would be subnormal (z < −87.33654) are 0; NaN propagates.
template <class V, bool kWithLow>
inline typename V::F ExpNonPositive(typename V::F z, typename V::F z_lo) {
  using F = typename V::F;
  const F cutoff = V::Set(-87.33654f);  // ln(2^-126)
  const F magic = V::Set(12583039.f);   // 1.5·2^23 + 127: rounds to an integer, pre-biased
  const F zc = V::Max(cutoff, z);       // NaN stays NaN
  F n = V::Fma(zc, V::Set(1.44269504f), magic);
  const F scale = V::Shl23(n);  // 2^n: biased exponent n + 127 in [1, 127]
  n = V::Sub(n, magic);
  // Cody–Waite: t = z − n·ln2 with ln2 split so that n·ln2_hi is exact.
  F t = V::Fma(n, V::Set(-0.693145751953125f), zc);
  t = V::Fma(n, V::Set(-1.42860677e-6f), t);
  if constexpr (kWithLow) t = V::Add(t, z_lo);
  // e^t = 1 + t·p(t) on |t| ≤ ln2/2: degree-6 fit, 2e-9 relative before rounding.
  F p = V::Set(1.384365256e-03f);
  p = V::Fma(p, t, V::Set(8.374155499e-03f));
  p = V::Fma(p, t, V::Set(4.166800156e-02f));
  p = V::Fma(p, t, V::Set(1.666643173e-01f));
  p = V::Fma(p, t, V::Set(4.999999404e-01f));
  p = V::Fma(p, t, V::Set(1.f));
  // scale·(1 + t·p), not scale + scale·t·p: near the cutoff scale·t would be subnormal, and
  // flushed to zero on threads with FTZ set.
  const F r = V::Mul(scale, V::Fma(t, p, V::Set(1.f)));
  return V::Select(V::Lt(z, cutoff), V::Zero(), r);
}

template <class V>
inline typename V::F ExpNonPositive(typename V::F z) {
  return ExpNonPositive<V, false>(z, z);
}

// 1 / (1 + e^-x), evaluated as e^-|x| / (1 + e^-|x|) and mirrored, so both tails are
// relatively accurate.
template <class V>
inline typename V::F Sigmoid(typename V::F x) {
  using F = typename V::F;
  const F e = ExpNonPositive<V>(V::Sub(V::Zero(), V::Abs(x)));
  const F q = V::Mul(e, V::Recip(V::Add(V::Set(1.f), e)));
  return V::Select(V::Gt(x, V::Zero()), V::Sub(V::Set(1.f), q), q);
}

template <class V>
inline typename V::F Silu(typename V::F x) {
  return V::Mul(x, Sigmoid<V>(x));
}

// The rounding error of x·x (= hi): x·x − hi exactly.
template <class V>
inline typename V::F SquareLow(typename V::F x, typename V::F hi) {
  if constexpr (V::kFma) {
    return V::Fma(x, x, V::Sub(V::Zero(), hi));
  } else {
    // Veltkamp split into 12-bit halves (x ≤ 14.5 here, so no overflow).
    using F = typename V::F;
    const F c = V::Mul(x, V::Set(4097.f));
    const F xh = V::Sub(c, V::Sub(c, x));
    const F xl = V::Sub(x, xh);
    F lo = V::Sub(V::Mul(xh, xh), hi);
    lo = V::Add(lo, V::Mul(V::Add(xh, xh), xl));
    return V::Add(lo, V::Mul(xl, xl));
  }
}

// Exact GELU x·Φ(x), Φ the standard normal CDF (= (1 + erf(x/√2)) / 2):
//  |x| ≤ 0.75: Φ(x) = 1/2 + x·A(x²), A a degree-4 fit (2.4e-9 relative);
//  otherwise:  Φ(−|x|) = e^{−x²/2}·P(|x|)/Q(|x|), P/Q a (4,5) rational fit of the Mills-type
//              ratio on [0.75, 14.5] (6.9e-10 relative), with x² split into hi + lo so the
//              exponential sees the exact argument; Φ(x) = 1 − Φ(−x) for x > 0.
// Unlike 1/2·(1 + erf(x/√2)) this keeps its relative accuracy in the negative tail.
template <class V>
inline typename V::F Gelu(typename V::F x) {
  using F = typename V::F;
  const F ax = V::Abs(x);
  const F u = V::Mul(x, x);
  F a = V::Set(1.029416599e-04f);
  a = V::Fma(a, u, V::Set(-1.181286410e-03f));
  a = V::Fma(a, u, V::Set(9.972349741e-03f));
  a = V::Fma(a, u, V::Set(-6.649029255e-02f));
  a = V::Fma(a, u, V::Set(3.989422917e-01f));
  const F phi_near = V::Fma(x, a, V::Set(0.5f));

  const F xc = V::Min(V::Set(14.5f), ax);  // NaN passes; beyond 14.5 the exponential is 0
  const F hi = V::Mul(xc, xc);
  const F lo = SquareLow<V>(xc, hi);
  const F e = ExpNonPositive<V, true>(V::Mul(hi, V::Set(-0.5f)), V::Mul(lo, V::Set(-0.5f)));
  F p = V::Set(5.575084593e-03f);
  p = V::Fma(p, xc, V::Set(4.895377159e-02f));
  p = V::Fma(p, xc, V::Set(2.061815113e-01f));
  p = V::Fma(p, xc, V::Set(4.665598273e-01f));
  p = V::Fma(p, xc, V::Set(5.000061393e-01f));
  F q = V::Set(1.397461817e-02f);
  q = V::Fma(q, xc, V::Set(1.227116883e-01f));
  q = V::Fma(q, xc, V::Set(5.307219625e-01f));
  q = V::Fma(q, xc, V::Set(1.293317914e+00f));
  q = V::Fma(q, xc, V::Set(1.731086493e+00f));
  q = V::Fma(q, xc, V::Set(1.f));
  const F m = V::Mul(p, V::Recip(q));  // Φ(−|x|) = e·m
  // x < 0: (x·m)·e, so that no intermediate goes subnormal before the last product.
  const F far_neg = V::Mul(V::Mul(x, m), e);
  const F far_pos = V::Mul(x, V::Fnma(m, e, V::Set(1.f)));
  const F far = V::Select(V::Gt(x, V::Zero()), far_pos, far_neg);
  return V::Select(V::Le(ax, V::Set(0.75f)), V::Mul(x, phi_near), far);
}

// relu6(x + 3) / 6 (torch's hardsigmoid), as a product with 1/6.
template <class V>
inline typename V::F HardSigmoid(typename V::F x) {
  const auto r6 = V::Min(V::Set(6.f), V::Max(V::Zero(), V::Add(x, V::Set(3.f))));
  return V::Mul(r6, V::Set(1.f / 6.f));
}

template <class V>
inline typename V::F HardSwish(typename V::F x) {
  return V::Mul(x, HardSigmoid<V>(x));
}

// Every activation, chosen at compile time. NaN inputs give NaN outputs for all of them.
template <class V, Activation kAct>
inline typename V::F Activate(typename V::F x) {
  if constexpr (kAct == Activation::kNone) {
    return x;
  } else if constexpr (kAct == Activation::kReLU) {
    return V::Max(V::Zero(), x);
  } else if constexpr (kAct == Activation::kReLU6) {
    return V::Min(V::Set(6.f), V::Max(V::Zero(), x));
  } else if constexpr (kAct == Activation::kSiLU) {
    return Silu<V>(x);
  } else if constexpr (kAct == Activation::kGELU) {
    return Gelu<V>(x);
  } else if constexpr (kAct == Activation::kSigmoid) {
    return Sigmoid<V>(x);
  } else if constexpr (kAct == Activation::kHardSwish) {
    return HardSwish<V>(x);
  } else {
    static_assert(kAct == Activation::kHardSigmoid);
    return HardSigmoid<V>(x);
  }
}

// Calls body(std::integral_constant<Activation, act>{}) so that loops specialize per activation.
template <class Body>
inline void DispatchActivation(Activation act, Body&& body) {
  switch (act) {
    case Activation::kNone:
      return body(std::integral_constant<Activation, Activation::kNone>{});
    case Activation::kReLU:
      return body(std::integral_constant<Activation, Activation::kReLU>{});
    case Activation::kReLU6:
      return body(std::integral_constant<Activation, Activation::kReLU6>{});
    case Activation::kSiLU:
      return body(std::integral_constant<Activation, Activation::kSiLU>{});
    case Activation::kGELU:
      return body(std::integral_constant<Activation, Activation::kGELU>{});
    case Activation::kSigmoid:
      return body(std::integral_constant<Activation, Activation::kSigmoid>{});
    case Activation::kHardSwish:
      return body(std::integral_constant<Activation, Activation::kHardSwish>{});
    case Activation::kHardSigmoid:
      return body(std::integral_constant<Activation, Activation::kHardSigmoid>{});
  }
}

// Applies `act` to n vectors held in registers (one switch for the block).
template <class V, int N>
inline void ActivateBlock(Activation act, typename V::F* v) {
  DispatchActivation(act, [&](auto a) {
#pragma GCC unroll 16
    for (int i = 0; i < N; ++i) v[i] = Activate<V, decltype(a)::value>(v[i]);
  });
}

// y[i] = fn(x[i]) for i < n, two vectors per iteration, a masked tail; y may equal x.
template <class V, class Fn>
inline void MapUnary(const float* x, float* y, int64_t n, Fn fn) {
  constexpr int64_t kL = V::kLanes;
  int64_t i = 0;
  for (; i + 2 * kL <= n; i += 2 * kL) {
    const auto a = V::Load(x + i);
    const auto b = V::Load(x + i + kL);
    V::Store(y + i, fn(a));
    V::Store(y + i + kL, fn(b));
  }
  if (i + kL <= n) {
    V::Store(y + i, fn(V::Load(x + i)));
    i += kL;
  }
  if (i < n) {
    const auto t = V::MakeTail(n - i);
    V::StoreTail(y + i, fn(V::LoadTail(x + i, t)), t);
  }
}

// y[i] = fn(a[i], b[i]) for i < n; y may equal a or b.
template <class V, class Fn>
inline void MapBinary(const float* a, const float* b, float* y, int64_t n, Fn fn) {
  constexpr int64_t kL = V::kLanes;
  int64_t i = 0;
  for (; i + 2 * kL <= n; i += 2 * kL) {
    const auto a0 = V::Load(a + i);
    const auto a1 = V::Load(a + i + kL);
    const auto b0 = V::Load(b + i);
    const auto b1 = V::Load(b + i + kL);
    V::Store(y + i, fn(a0, b0));
    V::Store(y + i + kL, fn(a1, b1));
  }
  if (i + kL <= n) {
    V::Store(y + i, fn(V::Load(a + i), V::Load(b + i)));
    i += kL;
  }
  if (i < n) {
    const auto t = V::MakeTail(n - i);
    V::StoreTail(y + i, fn(V::LoadTail(a + i, t), V::LoadTail(b + i, t)), t);
  }
}

// The activation kernel for one ISA and activation (the ActivationFn signature).
template <class V, Activation kAct>
void ActivationKernel(const float* x, float* y, int64_t n) {
  if constexpr (kAct == Activation::kNone) {
    if (x != y && n > 0) std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
  } else {
    MapUnary<V>(x, y, n, [](typename V::F v) { return Activate<V, kAct>(v); });
  }
}

}  // namespace visionserve::engine::kernels::vmath
