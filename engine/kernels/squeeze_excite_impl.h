#pragma once

// Internal to engine/kernels: the squeeze-excite FC kernel as a template over a vector wrapper
// V, instantiated per ISA.

#include <cstdint>

#include "engine/kernels/squeeze_excite_kernels.h"
#include "engine/kernels/vector_math.h"

namespace visionserve::engine::kernels::se_impl {

template <class V>
inline float Dot(const float* a, const float* b, int64_t n) {
  constexpr int64_t kL = V::kLanes;
  auto s0 = V::Zero(), s1 = V::Zero();
  int64_t i = 0;
  for (; i + 2 * kL <= n; i += 2 * kL) {
    s0 = V::Fma(V::Load(a + i), V::Load(b + i), s0);
    s1 = V::Fma(V::Load(a + i + kL), V::Load(b + i + kL), s1);
  }
  if (i + kL <= n) {
    s0 = V::Fma(V::Load(a + i), V::Load(b + i), s0);
    i += kL;
  }
  if (i < n) {
    const auto t = V::MakeTail(n - i);
    s1 = V::Fma(V::LoadTail(a + i, t), V::LoadTail(b + i, t), s1);
  }
  return V::ReduceAdd(V::Add(s0, s1));
}

template <class V>
inline void Activate(Activation act, float* x, int64_t n) {
  vmath::DispatchActivation(
      act, [&](auto k) { vmath::ActivationKernel<V, decltype(k)::value>(x, x, n); });
}

template <class V>
void SqueezeExciteFc(const SqueezeExciteFc& fc, const float* pooled, float* hidden, float* gate) {
  const int64_t c = fc.channels;
  for (int64_t j = 0; j < fc.squeeze_channels; ++j) {
    hidden[j] = fc.b1[j] + Dot<V>(fc.w1 + j * c, pooled, c);
  }
  Activate<V>(fc.inner, hidden, fc.squeeze_channels);
  for (int64_t i = 0; i < c; ++i) gate[i] = fc.b2[i];
  // gate += hidden[j]·w2t[j], four rows of w2t per pass over gate.
  constexpr int64_t kL = V::kLanes;
  int64_t j = 0;
  for (; j < fc.squeeze_channels; j += 4) {
    const int64_t rows = fc.squeeze_channels - j < 4 ? fc.squeeze_channels - j : 4;
    const float* w = fc.w2t + j * c;
    const auto h0 = V::Set(hidden[j]);
    const auto h1 = V::Set(rows > 1 ? hidden[j + 1] : 0.f);
    const auto h2 = V::Set(rows > 2 ? hidden[j + 2] : 0.f);
    const auto h3 = V::Set(rows > 3 ? hidden[j + 3] : 0.f);
    const float* w1 = rows > 1 ? w + c : w;  // a zero multiplier reads a valid row
    const float* w2 = rows > 2 ? w + 2 * c : w;
    const float* w3 = rows > 3 ? w + 3 * c : w;
    int64_t i = 0;
    for (; i + kL <= c; i += kL) {
      auto g = V::Load(gate + i);
      g = V::Fma(V::Load(w + i), h0, g);
      g = V::Fma(V::Load(w1 + i), h1, g);
      g = V::Fma(V::Load(w2 + i), h2, g);
      g = V::Fma(V::Load(w3 + i), h3, g);
      V::Store(gate + i, g);
    }
    if (i < c) {
      const auto t = V::MakeTail(c - i);
      auto g = V::LoadTail(gate + i, t);
      g = V::Fma(V::LoadTail(w + i, t), h0, g);
      g = V::Fma(V::LoadTail(w1 + i, t), h1, g);
      g = V::Fma(V::LoadTail(w2 + i, t), h2, g);
      g = V::Fma(V::LoadTail(w3 + i, t), h3, g);
      V::StoreTail(gate + i, g, t);
    }
  }
  Activate<V>(fc.gate, gate, c);
}

}  // namespace visionserve::engine::kernels::se_impl
