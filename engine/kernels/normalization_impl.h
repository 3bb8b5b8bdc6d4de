#pragma once

// Internal to engine/kernels: per-pixel channel normalizations (LayerNorm, the depthwise conv's
// channel norm, softmax) as templates over a vector wrapper V; instantiated per ISA.

#include <cstdint>
#include <limits>

#include "engine/kernels/vector_math.h"

namespace visionserve::engine::kernels::norm_impl {

// Σ (x[i] − pivot) over [0, n), in two vector accumulators plus a masked tail. With the pivot
// near the mean (e.g. x[0]) the partial sums stay small, so a large common offset costs no
// accuracy.
template <class V>
inline float SumMinus(const float* x, int64_t n, float pivot) {
  constexpr int64_t kL = V::kLanes;
  const auto p = V::Set(pivot);
  auto a0 = V::Zero(), a1 = V::Zero();
  int64_t i = 0;
  for (; i + 2 * kL <= n; i += 2 * kL) {
    a0 = V::Add(a0, V::Sub(V::Load(x + i), p));
    a1 = V::Add(a1, V::Sub(V::Load(x + i + kL), p));
  }
  if (i + kL <= n) {
    a0 = V::Add(a0, V::Sub(V::Load(x + i), p));
    i += kL;
  }
  if (i < n) {
    const auto t = V::MakeTail(n - i);
    a1 = V::Add(a1, V::ZeroPastTail(V::Sub(V::LoadTail(x + i, t), p), t));
  }
  return V::ReduceAdd(V::Add(a0, a1));
}

// Σ (x[i] − pivot − offset)² over [0, n): the squared deviations from mean = pivot + offset,
// formed without rounding the mean to the inputs' magnitude.
template <class V>
inline float SumSquaredDeviation(const float* x, int64_t n, float pivot, float offset) {
  constexpr int64_t kL = V::kLanes;
  const auto p = V::Set(pivot);
  const auto m = V::Set(offset);
  auto a0 = V::Zero(), a1 = V::Zero();
  int64_t i = 0;
  for (; i + 2 * kL <= n; i += 2 * kL) {
    const auto d0 = V::Sub(V::Sub(V::Load(x + i), p), m);
    const auto d1 = V::Sub(V::Sub(V::Load(x + i + kL), p), m);
    a0 = V::Fma(d0, d0, a0);
    a1 = V::Fma(d1, d1, a1);
  }
  if (i + kL <= n) {
    const auto d = V::Sub(V::Sub(V::Load(x + i), p), m);
    a0 = V::Fma(d, d, a0);
    i += kL;
  }
  if (i < n) {
    const auto t = V::MakeTail(n - i);
    const auto d = V::ZeroPastTail(V::Sub(V::Sub(V::LoadTail(x + i, t), p), m), t);
    a1 = V::Fma(d, d, a1);
  }
  return V::ReduceAdd(V::Add(a0, a1));
}

// y[i] = (x[i] − pivot − offset)·rstd (·gamma[i] + beta[i] when gamma is not null), i < n.
template <class V>
inline void Normalize(const float* x, float* y, int64_t n, float pivot, float offset, float rstd,
                      const float* gamma, const float* beta) {
  constexpr int64_t kL = V::kLanes;
  const auto p = V::Set(pivot);
  const auto m = V::Set(offset);
  const auto r = V::Set(rstd);
  int64_t i = 0;
  if (gamma != nullptr) {
    for (; i + kL <= n; i += kL) {
      const auto v = V::Mul(V::Sub(V::Sub(V::Load(x + i), p), m), r);
      V::Store(y + i, V::Fma(v, V::Load(gamma + i), V::Load(beta + i)));
    }
    if (i < n) {
      const auto t = V::MakeTail(n - i);
      const auto v = V::Mul(V::Sub(V::Sub(V::LoadTail(x + i, t), p), m), r);
      V::StoreTail(y + i, V::Fma(v, V::LoadTail(gamma + i, t), V::LoadTail(beta + i, t)), t);
    }
  } else {
    for (; i + kL <= n; i += kL) {
      V::Store(y + i, V::Mul(V::Sub(V::Sub(V::Load(x + i), p), m), r));
    }
    if (i < n) {
      const auto t = V::MakeTail(n - i);
      V::StoreTail(y + i, V::Mul(V::Sub(V::Sub(V::LoadTail(x + i, t), p), m), r), t);
    }
  }
}

// Each of `pixels` rows of `channels` floats (stride `channels`): zero mean, unit variance
// (biased variance + eps), then the optional affine. y may equal x.
template <class V>
void NormalizePixels(const float* x, float* y, int64_t pixels, int64_t channels, const float* gamma,
                     const float* beta, float eps) {
  const float inv_c = 1.f / static_cast<float>(channels);
  for (int64_t p = 0; p < pixels; ++p) {
    const float* xp = x + p * channels;
    // Everything relative to the first value: mean = pivot + offset, never rounded to the
    // inputs' magnitude.
    const float pivot = xp[0];
    const float offset = SumMinus<V>(xp, channels, pivot) * inv_c;
    const float var = SumSquaredDeviation<V>(xp, channels, pivot, offset) * inv_c;
    const float rstd = 1.f / __builtin_sqrtf(var + eps);
    Normalize<V>(xp, y + p * channels, channels, pivot, offset, rstd, gamma, beta);
  }
}

// Softmax over each of `rows` rows of `channels` floats, max-subtracted. y may equal x.
template <class V>
void SoftmaxRows(const float* x, float* y, int64_t rows, int64_t channels) {
  constexpr int64_t kL = V::kLanes;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    float* yr = y + r * channels;
    auto vmax = V::Set(-std::numeric_limits<float>::infinity());
    int64_t i = 0;
    for (; i + kL <= channels; i += kL) vmax = V::Max(V::Load(xr + i), vmax);
    float max = V::ReduceMax(vmax);
    for (int64_t j = i; j < channels; ++j) max = xr[j] > max ? xr[j] : max;
    const auto m = V::Set(max);
    auto sum = V::Zero();
    for (i = 0; i + kL <= channels; i += kL) {
      const auto e = vmath::ExpNonPositive<V>(V::Sub(V::Load(xr + i), m));
      V::Store(yr + i, e);
      sum = V::Add(sum, e);
    }
    if (i < channels) {
      const auto t = V::MakeTail(channels - i);
      const auto e =
          V::ZeroPastTail(vmath::ExpNonPositive<V>(V::Sub(V::LoadTail(xr + i, t), m)), t);
      V::StoreTail(yr + i, e, t);
      sum = V::Add(sum, e);
    }
    const auto inv = V::Set(1.f / V::ReduceAdd(sum));
    for (i = 0; i + kL <= channels; i += kL) V::Store(yr + i, V::Mul(V::Load(yr + i), inv));
    if (i < channels) {
      const auto t = V::MakeTail(channels - i);
      V::StoreTail(yr + i, V::Mul(V::LoadTail(yr + i, t), inv), t);
    }
  }
}

}  // namespace visionserve::engine::kernels::norm_impl
