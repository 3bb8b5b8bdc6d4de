#pragma once

// Helpers shared by engine tests: deterministic random tensors and params, tolerant compare.

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "engine/graph.h"
#include "engine/tensor.h"
#include "gtest/gtest.h"

namespace visionserve::engine::testing {

inline Tensor RandomTensor(int64_t n, Dims d, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  Tensor t(n, d);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (float& v : t.span()) v = u(rng);
  return t;
}

// Fills every param with plausible values: weights ~ U(±1/sqrt(fan_in)), BN var in [0.5, 1.5].
inline void RandomizeParams(Graph& g, uint32_t seed) {
  std::mt19937 rng(seed);
  for (Param& p : g.mutable_params()) {
    p.data.resize(static_cast<size_t>(p.numel()));
    float lo = -1.f, hi = 1.f;
    switch (p.role) {
      case ParamRole::kWeight: {
        const float b = 1.f / std::sqrt(static_cast<float>(std::max<int64_t>(p.fan_in, 1)));
        lo = -b * 1.7f, hi = b * 1.7f;
        break;
      }
      case ParamRole::kBnVar:
        lo = 0.5f, hi = 1.5f;
        break;
      case ParamRole::kBnGamma:
      case ParamRole::kLnGamma:
      case ParamRole::kLayerScale:
        lo = 0.5f, hi = 1.5f;
        break;
      default:
        lo = -0.2f, hi = 0.2f;
        break;
    }
    std::uniform_real_distribution<float> u(lo, hi);
    for (float& v : p.data) v = u(rng);
  }
}

// max |a-b| / max(max |b|, floor) over all elements.
inline double RelMaxDiff(const Tensor& a, const Tensor& b, double floor = 1e-6) {
  double diff = 0, mag = floor;
  for (int64_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double{a.data()[i]} - b.data()[i]));
    mag = std::max(mag, std::abs(double{b.data()[i]}));
  }
  return diff / mag;
}

}  // namespace visionserve::engine::testing
