#include "server/detect/nms.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/alloc_counter.h"

namespace visionserve::detect {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (ClampIsa(isa) == isa) isas.push_back(isa);
  }
  return isas;
}

struct Case {
  std::vector<float> boxes;
  std::vector<float> scores;
  std::vector<int32_t> classes;
  void Add(float x1, float y1, float x2, float y2, float score, int32_t cls = 0) {
    boxes.insert(boxes.end(), {x1, y1, x2, y2});
    scores.push_back(score);
    classes.push_back(cls);
  }
  NmsInput Input() const { return {boxes, scores, classes}; }
};

// Runs on every ISA; all must agree. Returns the kept indices.
std::vector<int32_t> Nms(const Case& c, float iou, int max_det = 300) {
  std::vector<int32_t> first;
  bool have_first = false;
  for (Isa isa : SupportedIsas()) {
    NmsScratch scratch(isa);
    std::vector<int32_t> keep;
    const absl::Status st = BatchedNms(c.Input(), {iou, max_det}, &scratch, &keep);
    EXPECT_TRUE(st.ok()) << st;
    if (!have_first) {
      first = keep;
      have_first = true;
    } else {
      EXPECT_EQ(keep, first) << IsaName(isa);
    }
  }
  return first;
}

TEST(BatchedNmsTest, EmptyInputKeepsNothing) { EXPECT_THAT(Nms(Case{}, 0.5f), IsEmpty()); }

TEST(BatchedNmsTest, IdenticalBoxesKeepTheBestScore) {
  Case c;
  c.Add(0, 0, 10, 10, 0.5f);
  c.Add(0, 0, 10, 10, 0.9f);
  c.Add(0, 0, 10, 10, 0.7f);
  EXPECT_THAT(Nms(c, 0.5f), ElementsAre(1));
  // IoU 1 is not > 1: threshold 1 suppresses nothing, output by descending score.
  EXPECT_THAT(Nms(c, 1.0f), ElementsAre(1, 2, 0));
}

TEST(BatchedNmsTest, EqualScoresVisitLowerIndexFirst) {
  Case c;
  for (int i = 0; i < 40; ++i) c.Add(0, 0, 10, 10, 0.5f);
  EXPECT_THAT(Nms(c, 0.5f), ElementsAre(0));
  Case apart;  // no overlaps: every box kept, ties in index order (torchvision's stable sort)
  for (int i = 0; i < 40; ++i) apart.Add(20.0f * i, 0, 20.0f * i + 10, 10, i % 2 ? 0.5f : 0.25f);
  const auto keep = Nms(apart, 0.5f);
  ASSERT_EQ(keep.size(), 40u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(keep[i], 2 * i + 1);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(keep[20 + i], 2 * i);
}

TEST(BatchedNmsTest, NestedBoxesUseAreaRatio) {
  Case c;
  c.Add(0, 0, 10, 10, 0.9f);                        // area 100
  c.Add(0, 0, 5, 10, 0.8f);                         // inside, IoU 50 / 100 = 0.5
  c.Add(2, 2, 4, 4, 0.7f);                          // inside, IoU 4 / 100
  EXPECT_THAT(Nms(c, 0.5f), ElementsAre(0, 1, 2));  // 0.5 is not > 0.5
  EXPECT_THAT(Nms(c, 0.49f), ElementsAre(0, 2));
  EXPECT_THAT(Nms(c, 0.03f), ElementsAre(0));
}

TEST(BatchedNmsTest, ZeroAreaBoxesNeverSuppressNorGetSuppressed) {
  Case c;
  c.Add(5, 5, 5, 5, 0.9f);    // a point
  c.Add(5, 5, 5, 5, 0.8f);    // the same point: 0 / 0 = NaN, not > threshold
  c.Add(0, 0, 10, 10, 0.7f);  // contains the point: IoU 0
  c.Add(0, 5, 10, 5, 0.6f);   // a line through it
  EXPECT_THAT(Nms(c, 0.0f), ElementsAre(0, 1, 2, 3));
}

TEST(BatchedNmsTest, InvertedBoxesIntersectNothing) {
  Case c;
  c.Add(0, 0, 10, 10, 0.9f);
  c.Add(10, 10, 0, 0, 0.8f);  // x2 < x1, y2 < y1
  EXPECT_THAT(Nms(c, 0.0f), ElementsAre(0, 1));
}

TEST(BatchedNmsTest, DifferentClassesNeverSuppressEachOther) {
  for (int n : {3, 1200}) {  // both of torchvision's strategies
    SCOPED_TRACE(n);
    Case c;
    for (int i = 0; i < n; ++i) c.Add(0, 0, 10, 10, 1.0f - 0.0001f * i, i % 3);
    EXPECT_THAT(Nms(c, 0.5f), ElementsAre(0, 1, 2));
  }
}

// torchvision's coordinate trick (n <= 1000) shifts class k by k * (max coordinate + 1); with
// negative coordinates that is not enough and classes can suppress each other. Reproduced on
// purpose (torchvision.ops.batched_nms returns [0] here); above 1000 boxes classes never mix.
TEST(BatchedNmsTest, ReproducesTheCoordinateTrickWithNegativeCoordinates) {
  Case small;
  small.Add(-10, -10, 0, 0, 0.9f, 0);
  small.Add(-10, -10, 0, 0, 0.8f, 1);  // shifted by 1: IoU 81 / 119 with the first
  EXPECT_THAT(Nms(small, 0.5f), ElementsAre(0));
  Case big;
  for (int i = 0; i < 1200; ++i) big.Add(-10, -10, 0, 0, 0.9f - 0.0001f * i, i % 2);
  EXPECT_THAT(Nms(big, 0.5f), ElementsAre(0, 1));
}

TEST(BatchedNmsTest, MaxDetectionsCutsTheOrderedOutput) {
  Case c;
  for (int i = 0; i < 20; ++i) c.Add(20.0f * i, 0, 20.0f * i + 10, 10, 0.01f * i);
  EXPECT_THAT(Nms(c, 0.5f, 3), ElementsAre(19, 18, 17));
  EXPECT_THAT(Nms(c, 0.5f, 1), ElementsAre(19));
}

TEST(BatchedNmsTest, ThresholdEdgeIsStrict) {
  Case c;
  c.Add(0, 0, 4, 1, 0.9f);
  c.Add(0, 0, 2, 1, 0.8f);  // IoU exactly 0.5
  EXPECT_THAT(Nms(c, 0.5f), ElementsAre(0, 1));
  EXPECT_THAT(Nms(c, std::nextafter(0.5f, 0.0f)), ElementsAre(0));
}

// Greedy, not pairwise: a box suppressed by a kept box cannot suppress others.
TEST(BatchedNmsTest, SuppressedBoxesDoNotSuppress) {
  Case c;
  c.Add(0, 0, 10, 10, 0.9f);
  c.Add(3, 0, 13, 10, 0.8f);  // IoU with 0: 70 / 130 > 0.5 -> gone
  c.Add(6, 0, 16, 10, 0.7f);  // IoU with 0: 40 / 160; with 1 it would be 0.54 but 1 is gone
  EXPECT_THAT(Nms(c, 0.5f), ElementsAre(0, 2));
}

// With many boxes (per-class path) and no ties or rounding hazards, both strategies agree
// with a plain per-class greedy NMS.
TEST(BatchedNmsTest, LargeInputsMatchPlainPerClassGreedy) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0, 600);
  std::uniform_real_distribution<float> wh(5, 120);
  for (int n : {500, 1001, 4000}) {
    SCOPED_TRACE(n);
    Case c;
    for (int i = 0; i < n; ++i) {
      const float x = u(rng), y = u(rng);
      c.Add(x, y, x + wh(rng), y + wh(rng), 1.0f - static_cast<float>(i) / n,
            static_cast<int32_t>(rng() % 7));
    }
    // Brute force, in double: scores are distinct and decreasing with the index.
    std::vector<int32_t> want;
    std::vector<bool> dead(n, false);
    for (int i = 0; i < n; ++i) {
      if (dead[i]) continue;
      want.push_back(i);
      for (int j = i + 1; j < n; ++j) {
        if (c.classes[j] != c.classes[i]) continue;
        const float* a = &c.boxes[4 * i];
        const float* b = &c.boxes[4 * j];
        const double w = std::max(0.0, double{std::min(a[2], b[2])} - std::max(a[0], b[0]));
        const double h = std::max(0.0, double{std::min(a[3], b[3])} - std::max(a[1], b[1]));
        const double inter = w * h;
        const double uni =
            double{a[2] - a[0]} * (a[3] - a[1]) + double{b[2] - b[0]} * (b[3] - b[1]) - inter;
        if (inter / uni > 0.45) dead[j] = true;
      }
    }
    EXPECT_EQ(Nms(c, 0.45f, n), want);
  }
}

TEST(BatchedNmsTest, RejectsBadInputs) {
  Case ok;
  ok.Add(0, 0, 1, 1, 0.5f);
  ok.Add(0, 0, 2, 2, 0.6f);
  NmsScratch scratch;
  std::vector<int32_t> keep = {42};
  auto run = [&](const NmsInput& in, NmsOptions o) {
    return BatchedNms(in, o, &scratch, &keep).code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(run(ok.Input(), {-0.1f, 10}), kInvalid);
  EXPECT_EQ(run(ok.Input(), {1.5f, 10}), kInvalid);
  EXPECT_EQ(run(ok.Input(), {std::nanf(""), 10}), kInvalid);
  EXPECT_EQ(run(ok.Input(), {0.5f, 0}), kInvalid);
  EXPECT_EQ(run({std::span<const float>(ok.boxes).first(7), ok.scores, ok.classes}, {}), kInvalid);
  EXPECT_EQ(run({ok.boxes, ok.scores, std::span<const int32_t>(ok.classes).first(1)}, {}),
            kInvalid);
  Case nan_box = ok;
  nan_box.boxes[5] = std::nanf("");
  EXPECT_EQ(run(nan_box.Input(), {}), kInvalid);
  Case inf_box = ok;
  inf_box.boxes[2] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(run(inf_box.Input(), {}), kInvalid);
  Case nan_score = ok;
  nan_score.scores[1] = std::nanf("");
  const absl::Status st = BatchedNms(nan_score.Input(), {}, &scratch, &keep);
  EXPECT_EQ(st.code(), kInvalid);
  EXPECT_THAT(st.message(), ::testing::HasSubstr("score 1"));
  EXPECT_THAT(keep, ElementsAre(42));  // untouched on error
}

TEST(BatchedNmsTest, WarmScratchAllocatesNothing) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(0, 600);
  auto make = [&](int n) {
    Case c;
    for (int i = 0; i < n; ++i) {
      const float x = u(rng), y = u(rng);
      c.Add(x, y, x + 50, y + 50, u(rng) / 600, static_cast<int32_t>(rng() % 80));
    }
    return c;
  };
  const Case big = make(8400), small = make(700);
  NmsScratch scratch;
  std::vector<int32_t> keep;
  ASSERT_TRUE(BatchedNms(big.Input(), {0.5f, 8400}, &scratch, &keep).ok());
  ASSERT_TRUE(BatchedNms(small.Input(), {0.5f, 8400}, &scratch, &keep).ok());
  const int64_t before = HeapAllocations();
  ASSERT_TRUE(BatchedNms(big.Input(), {0.5f, 8400}, &scratch, &keep).ok());
  ASSERT_TRUE(BatchedNms(small.Input(), {0.5f, 300}, &scratch, &keep).ok());
  EXPECT_EQ(HeapAllocations(), before);
}

}  // namespace
}  // namespace visionserve::detect
