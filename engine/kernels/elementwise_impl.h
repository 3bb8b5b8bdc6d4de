#pragma once

// Internal to engine/kernels: the element-wise kernels of elementwise_kernels.h as templates
// over a vector wrapper V, instantiated per ISA.

#include <cstdint>

#include "engine/activation.h"
#include "engine/kernels/vector_math.h"

namespace visionserve::engine::kernels::elementwise_impl {

template <class V>
void Vadd(const float* a, const float* b, float* y, int64_t n, Activation act) {
  vmath::DispatchActivation(act, [&](auto k) {
    vmath::MapBinary<V>(a, b, y, n, [](typename V::F u, typename V::F v) {
      return vmath::Activate<V, decltype(k)::value>(V::Add(u, v));
    });
  });
}

template <class V>
void Vmulc(const float* x, const float* s, float* y, int64_t pixels, int64_t channels) {
  const auto mul = [](typename V::F u, typename V::F v) { return V::Mul(u, v); };
  for (int64_t p = 0; p < pixels; ++p) {
    vmath::MapBinary<V>(x + p * channels, s, y + p * channels, channels, mul);
  }
}

}  // namespace visionserve::engine::kernels::elementwise_impl
