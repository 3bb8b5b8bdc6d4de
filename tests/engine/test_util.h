#pragma once

// Helpers shared by engine tests: deterministic random tensors and params, tolerant compare,
// and the check that a compiled model reads its input images in place.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "engine/executor.h"
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

// For a model planned at batch 2 whose outputs for the two images of `x` are `got`: its stem
// reads a batch's images where they lie (the server hands the engine each request's tensor in
// place), so the images in swapped buffers give the same outputs, swapped, bit for bit.
inline void ExpectImagesReadInPlace(const CompiledModel& model, const Tensor& x,
                                    const Tensor& got) {
  auto plan = model.GetPlan(2);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE((*plan)->input_by_image()) << (*plan)->Describe(model.graph());
  const float* images[2] = {x.image(1), x.image(0)};
  Tensor swapped(2, model.output_dims());
  ASSERT_TRUE(model.Run(images, swapped.span()).ok());
  const int64_t per = model.output_dims().elements();
  EXPECT_TRUE(std::equal(got.image(0), got.image(0) + per, swapped.image(1)));
  EXPECT_TRUE(std::equal(got.image(1), got.image(1) + per, swapped.image(0)));
}

}  // namespace visionserve::engine::testing
