#include "engine/kernels/pooling_kernels.h"

#include <cmath>
#include <cstdint>
#include <limits>
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

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

TEST(GlobalAvgPoolKernelTest, MatchesReferenceOverPixelAndChannelCounts) {
  uint32_t seed = 1;
  for (Isa isa : SupportedIsas()) {
    const PoolingKernels& k = GetPoolingKernels(isa);
    for (int64_t pixels : {1, 7, 49, 65, 12544}) {
      for (int64_t c : {1, 3, 15, 16, 17, 33, 64, 100}) {
        SCOPED_TRACE(absl::StrFormat("%s pixels=%d C=%d", IsaName(isa), pixels, c));
        // A channel range inside wider pixels: offset 5, stride C + 9.
        const int64_t stride = c + 9;
        const std::vector<float> x = Random(static_cast<size_t>(pixels * stride), seed++);
        std::vector<float> want(static_cast<size_t>(c)), y(static_cast<size_t>(c) + 16, kSentinel);
        GlobalAvgPoolRef(x.data() + 5, pixels, stride, c, want.data());
        k.gavgpool(x.data() + 5, pixels, stride, c, y.data());
        // Blocked float sums of values in [-1, 1]: a few 1e-8 on the mean.
        for (int64_t i = 0; i < c; ++i) ASSERT_NEAR(y[i], want[i], 2e-7) << i;
        for (size_t i = static_cast<size_t>(c); i < y.size(); ++i) ASSERT_EQ(y[i], kSentinel);
      }
    }
  }
}

TEST(MaxPoolKernelTest, MatchesReferenceExactlyOverGeometries) {
  uint32_t seed = 100;
  for (Isa isa : SupportedIsas()) {
    const PoolingKernels& k = GetPoolingKernels(isa);
    for (auto [kh, kw, s, pt, pl] : {std::tuple<int, int, int, int, int>{3, 3, 2, 1, 1},
                                     {2, 2, 2, 0, 0},
                                     {3, 3, 1, 1, 1},
                                     {3, 2, 1, 2, 0},
                                     {5, 5, 3, 2, 2},
                                     {1, 1, 1, 0, 0}}) {
      for (int64_t c : {1, 3, 15, 16, 17, 33, 64}) {
        MaxPoolParams p;
        p.in_h = 9, p.in_w = 8, p.channels = c;
        p.kernel_h = kh, p.kernel_w = kw, p.stride_h = p.stride_w = s;
        p.pad_top = pt, p.pad_left = pl;
        p.out_h = (p.in_h + 2 * pt - kh) / s + 1;
        p.out_w = (p.in_w + 2 * pl - kw) / s + 1;
        SCOPED_TRACE(
            absl::StrFormat("%s k%dx%d s%d pad %d,%d C=%d", IsaName(isa), kh, kw, s, pt, pl, c));
        std::vector<float> x = Random(static_cast<size_t>(p.in_h * p.in_w * c), seed++);
        x[static_cast<size_t>(c * 10)] = std::numeric_limits<float>::quiet_NaN();
        const size_t n = static_cast<size_t>(p.out_h * p.out_w * c);
        std::vector<float> want(n), y(n + 16, kSentinel);
        MaxPoolRef(p, x.data(), want.data(), 0, p.out_h);
        // Two bands: rows [0, 1) and the rest.
        k.maxpool(p, x.data(), y.data(), 0, 1);
        k.maxpool(p, x.data(), y.data(), 1, p.out_h);
        for (size_t i = 0; i < n; ++i) {
          if (std::isnan(want[i])) {
            ASSERT_TRUE(std::isnan(y[i])) << "NaN must propagate, at " << i;
          } else {
            ASSERT_EQ(y[i], want[i]) << i;
          }
        }
        for (size_t i = n; i < y.size(); ++i) ASSERT_EQ(y[i], kSentinel);
      }
    }
  }
}

}  // namespace
}  // namespace visionserve::engine::kernels
