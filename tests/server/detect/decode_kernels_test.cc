#include "server/detect/decode_kernels.h"

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

enum class Fill { kUniform, kTies, kSpecial };

// Class scores with a row stride of `stride` >= anchors; the padding between rows is poison
// (NaN and huge values) that a kernel reading past its anchors would pick up.
std::vector<float> MakeScores(int64_t anchors, int64_t classes, int64_t stride, Fill fill,
                              std::mt19937& rng) {
  std::vector<float> s(classes * stride, 0);
  std::uniform_real_distribution<float> u(0, 1);
  for (int64_t c = 0; c < classes; ++c) {
    for (int64_t a = 0; a < stride; ++a) {
      float v;
      if (a >= anchors) {
        v = (a % 2) ? std::nanf("") : 1e30f;
      } else if (fill == Fill::kUniform) {
        v = u(rng);
      } else if (fill == Fill::kTies) {
        v = static_cast<float>(rng() % 5) / 4;  // many exact ties, some at the threshold
      } else {
        switch (rng() % 8) {
          case 0:
            v = std::nanf("");
            break;
          case 1:
            v = -std::numeric_limits<float>::infinity();
            break;
          case 2:
            v = -0.0f;
            break;
          default:
            v = static_cast<float>(rng() % 5) / 4;
        }
      }
      s[c * stride + a] = v;
    }
  }
  return s;
}

TEST(ClassArgmaxTest, EveryIsaEqualsReference) {
  std::mt19937 rng(3);
  for (Isa isa : SupportedIsas()) {
    const ClassArgmaxFn kernel = GetClassArgmaxKernel(isa);
    for (int64_t anchors :
         {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 129, 1000, 8400, 8401}) {
      for (int64_t classes : {1, 2, 3, 17, 80}) {
        for (Fill fill : {Fill::kUniform, Fill::kTies, Fill::kSpecial}) {
          for (float thr : {0.0f, 0.25f, 0.5f, 0.99f}) {
            if (anchors >= 1000 && (classes == 2 || classes == 17) && thr != 0.25f) continue;
            const int64_t stride = anchors + (anchors % 3);
            SCOPED_TRACE(absl::StrCat(std::string(IsaName(isa)), " A=", anchors, " C=", classes,
                                      " fill=", static_cast<int>(fill), " thr=", thr));
            const auto scores = MakeScores(anchors, classes, stride, fill, rng);
            std::vector<int32_t> ra(anchors + 1, -1), ka(anchors + 1, -1);
            std::vector<int32_t> rc(anchors + 1, -1), kc(anchors + 1, -1);
            std::vector<float> rs(anchors + 1, -1), ks(anchors + 1, -1);
            const int64_t nr = ClassArgmaxRef(scores.data(), anchors, classes, stride, thr,
                                              ra.data(), rs.data(), rc.data());
            const int64_t nk = kernel(scores.data(), anchors, classes, stride, thr, ka.data(),
                                      ks.data(), kc.data());
            ASSERT_EQ(nk, nr);
            for (int64_t i = 0; i < nr; ++i) {
              ASSERT_EQ(ka[i], ra[i]) << i;
              ASSERT_EQ(kc[i], rc[i]) << i;
              ASSERT_EQ(std::memcmp(&ks[i], &rs[i], 4), 0) << i;
            }
            // Nothing written past the count.
            ASSERT_EQ(ka[nk], -1);
            ASSERT_EQ(ks[nk], -1);
          }
        }
      }
    }
  }
}

TEST(ClassArgmaxTest, ReferenceSemantics) {
  // 3 classes x 5 anchors, stride 5.
  const float nan = std::nanf("");
  const std::vector<float> s = {
      0.1f, 0.9f, nan,  0.5f, 0.2f,  // class 0
      0.3f, 0.9f, 0.8f, 0.5f, 0.2f,  // class 1
      0.2f, 0.1f, nan,  0.5f, 0.2f,  // class 2
  };
  for (Isa isa : SupportedIsas()) {
    SCOPED_TRACE(IsaName(isa));
    int32_t anchor[5], cls[5];
    float score[5];
    const int64_t n = GetClassArgmaxKernel(isa)(s.data(), 5, 3, 5, 0.2f, anchor, score, cls);
    ASSERT_EQ(n, 4);  // anchor 4's best is 0.2, not > 0.2
    EXPECT_EQ(anchor[0], 0);
    EXPECT_EQ(cls[0], 1);
    EXPECT_EQ(score[0], 0.3f);
    EXPECT_EQ(anchor[1], 1);
    EXPECT_EQ(cls[1], 0);  // tie 0.9 / 0.9: the first class wins
    EXPECT_EQ(anchor[2], 2);
    EXPECT_EQ(cls[2], 1);  // NaNs ignored
    EXPECT_EQ(score[2], 0.8f);
    EXPECT_EQ(anchor[3], 3);
    EXPECT_EQ(cls[3], 0);  // three-way tie
  }
}

}  // namespace
}  // namespace visionserve::detect
