#include "engine/kernels/elementwise_kernels.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/activation.h"
#include "engine/cpu_features.h"
#include "gtest/gtest.h"

namespace visionserve::engine::kernels {
namespace {

constexpr float kSentinel = 12345.f;
constexpr Activation kActs[] = {
    Activation::kNone, Activation::kReLU,    Activation::kReLU6,     Activation::kSiLU,
    Activation::kGELU, Activation::kSigmoid, Activation::kHardSwish, Activation::kHardSigmoid};

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (isa <= DetectIsa()) isas.push_back(isa);
  }
  return isas;
}

std::vector<float> Random(size_t n, uint32_t seed, float scale = 4.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

TEST(ElementwiseKernelsTest, VaddMatchesReferenceForEveryLengthAndActivation) {
  for (Isa isa : SupportedIsas()) {
    const ElementwiseKernels& k = GetElementwiseKernels(isa);
    EXPECT_EQ(k.vadd_name, absl::StrFormat("f32_vadd__%s", IsaName(isa)));
    for (Activation act : kActs) {
      for (int64_t n : {0, 1, 3, 15, 16, 17, 33, 100, 1000}) {
        SCOPED_TRACE(absl::StrFormat("%s %s n=%d", IsaName(isa), ActivationName(act), n));
        const std::vector<float> a = Random(static_cast<size_t>(n), 1),
                                 b = Random(static_cast<size_t>(n), 2);
        std::vector<float> want(static_cast<size_t>(n));
        VaddRef(a.data(), b.data(), want.data(), n, act);
        std::vector<float> y(static_cast<size_t>(n) + 16, kSentinel);
        k.vadd(a.data(), b.data(), y.data(), n, act);
        for (int64_t i = 0; i < n; ++i) {
          // The sum is exact in both; the activation's documented bound (< 7e-7) applies.
          ASSERT_NEAR(y[i], want[i], 7e-7 * std::abs(want[i]) + 1e-37) << i;
        }
        for (size_t i = static_cast<size_t>(n); i < y.size(); ++i) ASSERT_EQ(y[i], kSentinel);
        // In place over either operand gives the same bits.
        std::vector<float> in_a = a, in_b = b;
        k.vadd(in_a.data(), b.data(), in_a.data(), n, act);
        k.vadd(a.data(), in_b.data(), in_b.data(), n, act);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(std::bit_cast<uint32_t>(in_a[i]), std::bit_cast<uint32_t>(y[i]));
          ASSERT_EQ(std::bit_cast<uint32_t>(in_b[i]), std::bit_cast<uint32_t>(y[i]));
        }
      }
    }
  }
}

TEST(ElementwiseKernelsTest, VmulcMatchesReferenceExactly) {
  for (Isa isa : SupportedIsas()) {
    const ElementwiseKernels& k = GetElementwiseKernels(isa);
    for (int64_t pixels : {1, 3, 7}) {
      for (int64_t c : {1, 3, 15, 16, 17, 33, 100}) {
        SCOPED_TRACE(absl::StrFormat("%s pixels=%d C=%d", IsaName(isa), pixels, c));
        const size_t n = static_cast<size_t>(pixels * c);
        const std::vector<float> x = Random(n, 3), s = Random(static_cast<size_t>(c), 4);
        std::vector<float> want(n), y(n + 16, kSentinel);
        VmulcRef(x.data(), s.data(), want.data(), pixels, c);
        k.vmulc(x.data(), s.data(), y.data(), pixels, c);
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], want[i]) << i;
        for (size_t i = n; i < y.size(); ++i) ASSERT_EQ(y[i], kSentinel);
        std::vector<float> in_place = x;
        k.vmulc(in_place.data(), s.data(), in_place.data(), pixels, c);
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(in_place[i], want[i]) << i;
      }
    }
  }
}

TEST(ElementwiseKernelsTest, NamesFollowTheKernelGrammar) {
  EXPECT_EQ(ActivationKernelName(Activation::kSiLU, Isa::kAvx512), "f32_vsilu__avx512");
  EXPECT_EQ(ActivationKernelName(Activation::kNone, Isa::kPortable), "f32_vcopy__portable");
  EXPECT_EQ(ActivationKernelName(Activation::kHardSigmoid, Isa::kAvx2), "f32_vhsigmoid__avx2");
  EXPECT_EQ(GetElementwiseKernels(Isa::kPortable).vmulc_name, "f32_vmulc__portable");
}

}  // namespace
}  // namespace visionserve::engine::kernels
