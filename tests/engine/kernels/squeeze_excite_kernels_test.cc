#include "engine/kernels/squeeze_excite_kernels.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/activation.h"
#include "engine/cpu_features.h"
#include "gtest/gtest.h"

namespace visionserve::engine::kernels {
namespace {

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (isa <= DetectIsa()) isas.push_back(isa);
  }
  return isas;
}

std::vector<float> Random(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

TEST(SqueezeExciteKernelTest, MatchesReferenceOverChannelAndSqueezeCounts) {
  uint32_t seed = 1;
  for (Isa isa : SupportedIsas()) {
    const SqueezeExciteKernel k = GetSqueezeExciteKernel(isa);
    EXPECT_EQ(k.name, absl::StrFormat("f32_se_fc__%s", IsaName(isa)));
    for (int64_t c : {1, 3, 16, 17, 100, 1152}) {
      for (int64_t s : {1, 3, 5, 48}) {
        for (auto [inner, gate] : {std::pair{Activation::kSiLU, Activation::kSigmoid},
                                   std::pair{Activation::kReLU, Activation::kHardSigmoid}}) {
          SCOPED_TRACE(absl::StrFormat("%s C=%d S=%d %s/%s", IsaName(isa), c, s,
                                       ActivationName(inner), ActivationName(gate)));
          const auto cs = static_cast<size_t>(c), ss = static_cast<size_t>(s);
          const std::vector<float> w1 = Random(ss * cs, seed++, 1.f / std::sqrt(float(c)));
          const std::vector<float> b1 = Random(ss, seed++, 0.2f);
          const std::vector<float> w2t = Random(ss * cs, seed++, 2.f / std::sqrt(float(s)));
          const std::vector<float> b2 = Random(cs, seed++, 0.2f);
          const std::vector<float> pooled = Random(cs, seed++, 1.f);
          SqueezeExciteFc fc{c, s, w1.data(), b1.data(), w2t.data(), b2.data(), inner, gate};
          std::vector<float> want_h(ss), want_g(cs), h(ss), g(cs);
          SqueezeExciteFcRef(fc, pooled.data(), want_h.data(), want_g.data());
          k.fn(fc, pooled.data(), h.data(), g.data());
          for (size_t j = 0; j < ss; ++j) ASSERT_NEAR(h[j], want_h[j], 2e-6) << j;
          for (size_t i = 0; i < cs; ++i) ASSERT_NEAR(g[i], want_g[i], 2e-6) << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace visionserve::engine::kernels
