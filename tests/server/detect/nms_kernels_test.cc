#include "server/detect/nms_kernels.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace visionserve::detect {
namespace {

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (ClampIsa(isa) == isa) isas.push_back(isa);
  }
  return isas;
}

struct Soa {
  std::vector<float> x1, y1, x2, y2, area;
  std::vector<int32_t> id;
  NmsCandidates View() {
    return {x1.data(), y1.data(), x2.data(), y2.data(), area.data(), id.data()};
  }
};

// Candidates around `ref` (so many overlap), with degenerate and extreme ones mixed in.
Soa MakeCandidates(int64_t n, std::mt19937& rng) {
  Soa s;
  std::uniform_real_distribution<float> u(-20, 120);
  std::uniform_real_distribution<float> wh(0, 80);
  for (int64_t i = 0; i < n; ++i) {
    float x1 = u(rng), y1 = u(rng), x2 = x1 + wh(rng), y2 = y1 + wh(rng);
    switch (rng() % 12) {
      case 0:  // zero width
        x2 = x1;
        break;
      case 1:  // a point
        x2 = x1;
        y2 = y1;
        break;
      case 2:  // inverted
        std::swap(x1, x2);
        break;
      case 3:  // the reference box itself
        x1 = 10, y1 = 20, x2 = 60, y2 = 90;
        break;
      case 4:  // signed zeros on the edges
        x1 = -0.0f, y1 = 0.0f, x2 = 0.0f, y2 = 50;
        break;
      case 5:  // overflowing area
        x1 = -3e38f, x2 = 3e38f;
        break;
      case 6:  // quantized coordinates: exact IoUs such as 1/2 hit the threshold exactly
        x1 = std::round(x1 / 10) * 10, x2 = x1 + 50, y1 = 20, y2 = 90;
        break;
      default:
        break;
    }
    s.x1.push_back(x1);
    s.y1.push_back(y1);
    s.x2.push_back(x2);
    s.y2.push_back(y2);
    s.area.push_back((x2 - x1) * (y2 - y1));
    s.id.push_back(static_cast<int32_t>(i));
  }
  return s;
}

void ExpectSamePrefix(const Soa& a, const Soa& b, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    ASSERT_EQ(a.id[i], b.id[i]) << i;
    // Bitwise: the kernels move values, they must not alter them (not even -0 vs +0).
    ASSERT_EQ(std::memcmp(&a.x1[i], &b.x1[i], 4), 0) << i;
    ASSERT_EQ(std::memcmp(&a.y1[i], &b.y1[i], 4), 0) << i;
    ASSERT_EQ(std::memcmp(&a.x2[i], &b.x2[i], 4), 0) << i;
    ASSERT_EQ(std::memcmp(&a.y2[i], &b.y2[i], 4), 0) << i;
    ASSERT_EQ(std::memcmp(&a.area[i], &b.area[i], 4), 0) << i;
  }
}

TEST(NmsKernelsTest, EveryIsaEqualsReference) {
  std::mt19937 rng(11);
  const NmsRefBox refs[] = {
      {10, 20, 60, 90, 50 * 70},         {0, 0, 0, 0, 0},  // a point: IoU 0 or NaN with everything
      {30, 30, 10, 50, -20 * 20},                          // inverted
      {-3e38f, 0, 3e38f, 100, INFINITY},                   // overflowed area
      {-0.0f, 0.0f, 0.0f, 50, 0},
  };
  const float thresholds[] = {0.0f, 0.3f, 0.5f, 0.7f, 1.0f};
  for (Isa isa : SupportedIsas()) {
    const NmsFilterFn kernel = GetNmsFilterKernel(isa);
    for (int64_t n : {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 1000, 1023}) {
      for (const NmsRefBox& ref : refs) {
        for (float thr : thresholds) {
          SCOPED_TRACE(
              absl::StrCat(std::string(IsaName(isa)), " n=", n, " ref.x1=", ref.x1, " thr=", thr));
          Soa base = MakeCandidates(n, rng);
          Soa want = base, got = base;
          const int64_t k_ref = NmsFilterRef(ref, thr, want.View(), n);
          const int64_t k = kernel(ref, thr, got.View(), n);
          ASSERT_EQ(k, k_ref);
          ExpectSamePrefix(got, want, k);
        }
      }
    }
  }
}

// The reference is torchvision's loop body: spot-check its definition on exact cases.
TEST(NmsKernelsTest, ReferenceFollowsTorchvisionIou) {
  Soa s;
  auto add = [&s](float x1, float y1, float x2, float y2) {
    s.x1.push_back(x1);
    s.y1.push_back(y1);
    s.x2.push_back(x2);
    s.y2.push_back(y2);
    s.area.push_back((x2 - x1) * (y2 - y1));
    s.id.push_back(static_cast<int32_t>(s.id.size()));
  };
  const NmsRefBox ref{0, 0, 4, 1, 4};
  add(0, 0, 2, 1);  // IoU 2/4 = 0.5 exactly
  add(0, 0, 4, 1);  // identical: IoU 1
  add(4, 0, 8, 1);  // touching edge: IoU 0
  add(1, 1, 1, 1);  // zero area: IoU 0
  add(0, 0, 3, 1);  // IoU 3/4
  for (Isa isa : SupportedIsas()) {
    SCOPED_TRACE(IsaName(isa));
    Soa a = s;
    // IoU == threshold keeps; only IoU > 0.5 (ids 1 and 4) goes.
    ASSERT_EQ(GetNmsFilterKernel(isa)(ref, 0.5f, a.View(), 5), 3);
    EXPECT_EQ(a.id[0], 0);
    EXPECT_EQ(a.id[1], 2);
    EXPECT_EQ(a.id[2], 3);
    Soa b = s;
    ASSERT_EQ(GetNmsFilterKernel(isa)(ref, std::nextafter(0.5f, 0.0f), b.View(), 5), 2);
    EXPECT_EQ(b.id[0], 2);
    EXPECT_EQ(b.id[1], 3);
    // Threshold 0: anything overlapping at all goes; zero overlap stays.
    Soa c = s;
    EXPECT_EQ(GetNmsFilterKernel(isa)(ref, 0.0f, c.View(), 5), 2);
  }
  // Two zero-area boxes: 0 / 0 is NaN, which never suppresses, even at threshold 0.
  Soa z;
  z.x1 = {5};
  z.y1 = {5};
  z.x2 = {5};
  z.y2 = {5};
  z.area = {0};
  z.id = {0};
  EXPECT_EQ(NmsFilterRef({5, 5, 5, 5, 0}, 0.0f, z.View(), 1), 1);
}

}  // namespace
}  // namespace visionserve::detect
