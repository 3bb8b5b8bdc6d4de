#include "models/synthetic_weights.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/reference.h"
#include "engine/tensor.h"
#include "gtest/gtest.h"
#include "models/zoo.h"

namespace visionserve::models {
namespace {

using engine::Graph;
using engine::Param;
using engine::ParamRole;

// FNV-1a over every param's name and bytes.
uint64_t HashParams(const Graph& g) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](const void* data, size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) {
      h ^= bytes[i];
      h *= 0x100000001b3ull;
    }
  };
  for (const Param& p : g.params()) {
    mix(p.name.data(), p.name.size());
    mix(p.data.data(), p.data.size() * sizeof(float));
  }
  return h;
}

Graph Build(const std::string& name, uint64_t seed, int input_size = 0) {
  BuildOptions opts;
  opts.seed = seed;
  opts.input_size = input_size;
  auto g = BuildModel(name, opts);
  EXPECT_TRUE(g.ok()) << g.status();
  return *std::move(g);
}

TEST(SyntheticWeightsTest, SameSeedSameBytesDifferentSeedDifferentBytes) {
  const Graph a = Build("regnet_y_400mf", 0);
  const Graph b = Build("regnet_y_400mf", 0);
  const Graph c = Build("regnet_y_400mf", 1);
  ASSERT_EQ(a.params().size(), b.params().size());
  size_t differing = 0;
  for (size_t i = 0; i < a.params().size(); ++i) {
    const Param& pa = a.params()[i];
    ASSERT_EQ(pa.data.size(), b.params()[i].data.size());
    EXPECT_EQ(
        std::memcmp(pa.data.data(), b.params()[i].data.data(), pa.data.size() * sizeof(float)), 0)
        << pa.name;
    if (pa.data != c.params()[i].data) ++differing;
  }
  EXPECT_EQ(differing, a.params().size()) << "every param should depend on the seed";
  EXPECT_EQ(HashParams(a), HashParams(b));
  EXPECT_NE(HashParams(a), HashParams(c));
}

// The generator uses integer arithmetic and exact IEEE operations only, so these bytes are the
// same on every platform. A deliberate change to the scheme updates the constant.
TEST(SyntheticWeightsTest, BytesArePinned) {
  EXPECT_EQ(HashParams(Build("mobilenet_v3_small", 0)), 0x853285a10ac55f51ull);
}

TEST(SyntheticWeightsTest, ValuesArePlausibleForTheirRoles) {
  const Graph g = Build("efficientnet_b0", 3);
  for (const Param& p : g.params()) {
    ASSERT_EQ(static_cast<int64_t>(p.data.size()), p.numel()) << p.name;
    double sum = 0, sum2 = 0;
    for (float v : p.data) {
      ASSERT_TRUE(std::isfinite(v)) << p.name;
      sum += v;
      sum2 += double{v} * v;
    }
    const double n = static_cast<double>(p.data.size());
    switch (p.role) {
      case ParamRole::kWeight:
        if (n >= 256) {
          // He-normal: second moment 2 / fan_in (gain 0.1 for squeeze-excite fc2).
          const double he = 2.0 / static_cast<double>(p.fan_in);
          const double ratio = sum2 / n / he;
          const bool se_gate = p.name.find("fc2.weight") != std::string::npos;
          EXPECT_NEAR(ratio, se_gate ? 0.005 : 1.0, se_gate ? 0.002 : 0.3) << p.name;
        }
        break;
      case ParamRole::kBnVar:
        for (float v : p.data) EXPECT_GT(v, 0.f) << p.name;
        break;
      case ParamRole::kBnGamma:
        for (float v : p.data) EXPECT_TRUE(v >= 0.25f && v <= 5.f) << p.name << " " << v;
        break;
      default:
        break;
    }
  }
}

// Logits of a unit-normal image are finite and spread like a classifier's (order 1), through
// every family, at a reduced resolution (and, for two small models, the native one).
struct RunCase {
  std::string model;
  int input_size;
};

class SyntheticNumericsTest : public ::testing::TestWithParam<RunCase> {};

TEST_P(SyntheticNumericsTest, LogitsAreFiniteAndOrderOne) {
  const Graph g = Build(GetParam().model, 0, GetParam().input_size);
  engine::Tensor x(2, g.value(g.inputs()[0]).dims);
  uint64_t state = 12345;
  for (float& v : x.span()) {
    // Sum of four uniforms: mean 0, variance 1.
    double s = 0;
    for (int k = 0; k < 4; ++k) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      s += static_cast<double>(state >> 11) * 0x1.0p-53;
    }
    v = static_cast<float>((s - 2.0) * 1.7320508075688772);
  }
  auto out = engine::RunReference(g, {&x, 1});
  ASSERT_TRUE(out.ok()) << out.status();
  const engine::Tensor& logits = (*out)[0];
  ASSERT_EQ(logits.dims(), (engine::Dims{1, 1, 1000}));
  double sum = 0, sum2 = 0;
  for (float v : logits.span()) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sum2 += double{v} * v;
  }
  const double n = static_cast<double>(logits.size());
  const double sd = std::sqrt(sum2 / n - (sum / n) * (sum / n));
  EXPECT_GT(sd, 0.1) << GetParam().model;
  EXPECT_LT(sd, 20.0) << GetParam().model;
  // The two images get different logits.
  double diff = 0;
  for (int64_t k = 0; k < 1000; ++k) diff += std::abs(logits.image(0)[k] - logits.image(1)[k]);
  EXPECT_GT(diff / 1000, 1e-3) << GetParam().model;
}

INSTANTIATE_TEST_SUITE_P(
    Families, SyntheticNumericsTest,
    ::testing::Values(RunCase{"regnet_y_400mf", 64}, RunCase{"regnet_x_400mf", 64},
                      RunCase{"convnext_tiny", 64}, RunCase{"efficientnet_b0", 64},
                      RunCase{"resnet50", 64}, RunCase{"mobilenet_v2", 64},
                      RunCase{"mobilenet_v3_large", 64}, RunCase{"mobilenet_v3_small", 64},
                      RunCase{"regnet_y_400mf", 224}, RunCase{"efficientnet_b0", 224}),
    [](const auto& info) {
      return info.param.model + "_" + std::to_string(info.param.input_size);
    });

}  // namespace
}  // namespace visionserve::models
