#include "engine/kernels/normalization_kernels.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/cpu_features.h"
#include "gtest/gtest.h"

namespace visionserve::engine::kernels {
namespace {

constexpr float kSentinel = 12345.f;

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (isa <= DetectIsa()) isas.push_back(isa);
  }
  return isas;
}

std::vector<float> Random(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

TEST(LayerNormKernelTest, MatchesReferenceOverChannelCountsWithAndWithoutAffine) {
  uint32_t seed = 1;
  for (Isa isa : SupportedIsas()) {
    const NormalizationKernels& k = GetNormalizationKernels(isa);
    for (int64_t c : {1, 2, 3, 15, 16, 17, 33, 100, 768}) {
      for (bool affine : {false, true}) {
        // A large common offset checks that the variance is of deviations, not E[x²] − E[x]².
        for (float offset : {0.f, 50.f}) {
          SCOPED_TRACE(
              absl::StrFormat("%s C=%d affine=%d offset=%g", IsaName(isa), c, affine, offset));
          const int64_t rows = 5;
          const size_t n = static_cast<size_t>(rows * c);
          const std::vector<float> x = Random(n, seed++, offset - 1.f, offset + 1.f);
          const std::vector<float> gamma = Random(static_cast<size_t>(c), seed++, 0.5f, 1.5f);
          const std::vector<float> beta = Random(static_cast<size_t>(c), seed++, -0.2f, 0.2f);
          const float* g = affine ? gamma.data() : nullptr;
          const float* b = affine ? beta.data() : nullptr;
          std::vector<float> want(n), y(n + 16, kSentinel);
          LayerNormRef(x.data(), want.data(), rows, c, g, b, 1e-5f);
          k.layernorm(x.data(), y.data(), rows, c, g, b, 1e-5f);
          // Offset 50: the inputs themselves carry only 50·2^-24 of resolution.
          const double tol = offset == 0.f ? 2e-6 : 4e-6;
          for (size_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], want[i], tol) << i;
          for (size_t i = n; i < y.size(); ++i) ASSERT_EQ(y[i], kSentinel);
          std::vector<float> in_place = x;
          k.layernorm(in_place.data(), in_place.data(), rows, c, g, b, 1e-5f);
          for (size_t i = 0; i < n; ++i) ASSERT_EQ(in_place[i], y[i]) << i;
        }
      }
    }
  }
}

TEST(SoftmaxKernelTest, MatchesReferenceAndIsStableForLargeLogits) {
  uint32_t seed = 100;
  for (Isa isa : SupportedIsas()) {
    const NormalizationKernels& k = GetNormalizationKernels(isa);
    EXPECT_EQ(k.softmax_name, absl::StrFormat("f32_softmax__%s", IsaName(isa)));
    for (int64_t c : {1, 3, 15, 16, 17, 33, 100, 1000}) {
      for (float scale : {1.f, 100.f}) {
        SCOPED_TRACE(absl::StrFormat("%s C=%d scale=%g", IsaName(isa), c, scale));
        const int64_t rows = 3;
        const size_t n = static_cast<size_t>(rows * c);
        std::vector<float> x = Random(n, seed++, -scale, scale);
        x[0] = 1000.f;  // exp(1000) overflows unless the max is subtracted first
        std::vector<float> want(n), y(n + 16, kSentinel);
        SoftmaxRef(x.data(), want.data(), rows, c);
        k.softmax(x.data(), y.data(), rows, c);
        for (size_t i = 0; i < n; ++i) {
          ASSERT_NEAR(y[i], want[i], 1e-6 * want[i] + 1e-37) << i;
        }
        for (size_t i = n; i < y.size(); ++i) ASSERT_EQ(y[i], kSentinel);
        std::vector<float> in_place = x;
        k.softmax(in_place.data(), in_place.data(), rows, c);
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(in_place[i], y[i]) << i;
      }
    }
  }
}

}  // namespace
}  // namespace visionserve::engine::kernels
