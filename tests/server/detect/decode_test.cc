#include "server/detect/decode.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/alloc_counter.h"

namespace visionserve::detect {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A [4 + C, A] output with helpers to set one anchor.
struct Output {
  int classes;
  int64_t anchors;
  std::vector<float> data;
  Output(int c, int64_t a) : classes(c), anchors(a), data((4 + c) * a, 0.0f) {}
  void Box(int64_t a, float cx, float cy, float w, float h) {
    data[a] = cx;
    data[anchors + a] = cy;
    data[2 * anchors + a] = w;
    data[3 * anchors + a] = h;
  }
  float& Score(int64_t a, int c) { return data[(4 + c) * anchors + a]; }
  YoloOutputView View() const { return {data, classes, anchors}; }
};

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (ClampIsa(isa) == isa) isas.push_back(isa);
  }
  return isas;
}

Candidates Decode(const Output& out, const DecodeOptions& o) {
  Candidates first;
  bool have = false;
  for (Isa isa : SupportedIsas()) {
    DecodeScratch scratch(isa);
    Candidates c;
    const absl::Status st = DecodeYoloOutput(out.View(), o, &scratch, &c);
    EXPECT_TRUE(st.ok()) << st;
    if (!have) {
      first = c;
      have = true;
    } else {
      EXPECT_EQ(c.boxes, first.boxes) << IsaName(isa);
      EXPECT_EQ(c.scores, first.scores) << IsaName(isa);
      EXPECT_EQ(c.class_ids, first.class_ids) << IsaName(isa);
      EXPECT_EQ(c.anchors, first.anchors) << IsaName(isa);
    }
  }
  return first;
}

TEST(DecodeYoloOutputTest, BestClassAboveThresholdWithXyxyBoxes) {
  Output out(3, 20);
  out.Box(2, 100, 50, 20, 10);
  out.Score(2, 1) = 0.9f;
  out.Score(2, 2) = 0.8f;
  out.Box(7, 10.5f, 20.5f, 3, 5);
  out.Score(7, 0) = 0.3f;
  out.Score(9, 2) = 0.25f;  // == threshold: not kept (strictly greater)
  const Candidates c = Decode(out, {.score_threshold = 0.25f});
  EXPECT_THAT(c.anchors, ElementsAre(2, 7));
  EXPECT_THAT(c.class_ids, ElementsAre(1, 0));
  EXPECT_THAT(c.scores, ElementsAre(0.9f, 0.3f));
  EXPECT_THAT(c.boxes, ElementsAre(90, 45, 110, 55, 9, 18, 12, 23));
}

TEST(DecodeYoloOutputTest, ClassFilterAppliesAfterTheBestClass) {
  Output out(3, 4);
  out.Score(0, 0) = 0.9f;  // best 0 (allowed)
  out.Score(1, 1) = 0.9f;  // best 1 (filtered) with class 2 above threshold: dropped
  out.Score(1, 2) = 0.6f;
  out.Score(2, 2) = 0.7f;  // best 2 (allowed)
  const std::vector<int32_t> allowed = {0, 2};
  const Candidates c = Decode(out, {.score_threshold = 0.5f, .class_filter = allowed});
  EXPECT_THAT(c.anchors, ElementsAre(0, 2));
  EXPECT_THAT(c.class_ids, ElementsAre(0, 2));
}

TEST(DecodeYoloOutputTest, MultiLabelIsAnchorMajorThenClass) {
  Output out(4, 3);
  out.Score(0, 3) = 0.6f;
  out.Score(0, 1) = 0.7f;
  out.Score(2, 0) = 0.8f;
  out.Score(2, 2) = 0.55f;
  out.Score(2, 3) = 0.5f;  // == threshold
  out.Score(1, 1) = 0.4f;
  const Candidates c = Decode(out, {.score_threshold = 0.5f, .multi_label = true});
  EXPECT_THAT(c.anchors, ElementsAre(0, 0, 2, 2));
  EXPECT_THAT(c.class_ids, ElementsAre(1, 3, 0, 2));
  EXPECT_THAT(c.scores, ElementsAre(0.7f, 0.6f, 0.8f, 0.55f));
  const std::vector<int32_t> allowed = {3, 0};
  const Candidates f =
      Decode(out, {.score_threshold = 0.5f, .multi_label = true, .class_filter = allowed});
  EXPECT_THAT(f.class_ids, ElementsAre(3, 0));
}

TEST(DecodeYoloOutputTest, MaxCandidatesKeepsTheBestInScoreOrder) {
  Output out(1, 6);
  const float s[6] = {0.3f, 0.9f, 0.5f, 0.7f, 0.6f, 0.8f};
  for (int a = 0; a < 6; ++a) out.Score(a, 0) = s[a];
  const Candidates c = Decode(out, {.score_threshold = 0.0f, .max_candidates = 3});
  EXPECT_THAT(c.anchors, ElementsAre(1, 5, 3));
  EXPECT_THAT(c.scores, ElementsAre(0.9f, 0.8f, 0.7f));
  EXPECT_EQ(c.boxes.size(), 12u);
  const Candidates all = Decode(out, {.score_threshold = 0.0f, .max_candidates = 6});
  EXPECT_THAT(all.anchors, ElementsAre(0, 1, 2, 3, 4, 5));  // not cut: anchor order
}

TEST(DecodeYoloOutputTest, NanClassScoresNeverPass) {
  Output out(2, 3);
  out.Score(0, 0) = std::nanf("");
  out.Score(0, 1) = 0.6f;
  out.Score(1, 0) = std::nanf("");
  out.Score(1, 1) = std::nanf("");
  const Candidates c = Decode(out, {.score_threshold = 0.5f});
  EXPECT_THAT(c.anchors, ElementsAre(0));
  EXPECT_THAT(c.class_ids, ElementsAre(1));
}

TEST(DecodeYoloOutputTest, RejectsBadInputs) {
  Output out(3, 10);
  DecodeScratch scratch;
  Candidates c;
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  auto run = [&](const YoloOutputView& v, const DecodeOptions& o) {
    return DecodeYoloOutput(v, o, &scratch, &c).code();
  };
  EXPECT_EQ(run({out.data, 4, 10}, {}), kInvalid);  // size mismatch
  EXPECT_EQ(run({out.data, 0, 10}, {}), kInvalid);
  EXPECT_EQ(run({out.data, 3, -1}, {}), kInvalid);
  EXPECT_EQ(run(out.View(), {.score_threshold = -0.01f}), kInvalid);
  EXPECT_EQ(run(out.View(), {.score_threshold = std::nanf("")}), kInvalid);
  EXPECT_EQ(run(out.View(), {.score_threshold = 1.5f}), kInvalid);
  EXPECT_EQ(run(out.View(), {.max_candidates = 0}), kInvalid);
  const std::vector<int32_t> bad_filter = {0, 3};
  EXPECT_EQ(run(out.View(), {.class_filter = bad_filter}), kInvalid);
  // A candidate with a NaN box is an error that names the anchor; below threshold it is not.
  out.Box(6, std::nanf(""), 1, 1, 1);
  EXPECT_EQ(run(out.View(), {}), absl::StatusCode::kOk);
  out.Score(6, 2) = 0.9f;
  const absl::Status st = DecodeYoloOutput(out.View(), {}, &scratch, &c);
  EXPECT_EQ(st.code(), kInvalid);
  EXPECT_THAT(st.message(), HasSubstr("anchor 6"));
  out.Box(6, 1, 1, 1, 1);
  out.Score(6, 2) = std::numeric_limits<float>::infinity();
  EXPECT_EQ(run(out.View(), {}), kInvalid);
}

TEST(DecodeYoloOutputTest, EmptyOutputIsOk) {
  Output out(80, 0);
  EXPECT_EQ(Decode(out, {}).size(), 0u);
}

TEST(DecodeYoloOutputTest, WarmScratchAllocatesNothing) {
  Output out(80, 8400);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(0, 1);
  for (int64_t a = 0; a < out.anchors; ++a) {
    out.Box(a, u(rng) * 640, u(rng) * 640, u(rng) * 100, u(rng) * 100);
    for (int c = 0; c < 80; ++c) out.Score(a, c) = u(rng) < 0.01f ? u(rng) : 0.001f;
  }
  DecodeScratch scratch;
  Candidates c;
  const std::vector<int32_t> filter = {0, 5, 9};
  DecodeOptions multi{.score_threshold = 0.1f, .multi_label = true, .max_candidates = 100};
  ASSERT_TRUE(DecodeYoloOutput(out.View(), multi, &scratch, &c).ok());
  ASSERT_TRUE(DecodeYoloOutput(out.View(), {.class_filter = filter}, &scratch, &c).ok());
  const int64_t before = HeapAllocations();
  ASSERT_TRUE(DecodeYoloOutput(out.View(), multi, &scratch, &c).ok());
  ASSERT_TRUE(DecodeYoloOutput(out.View(), {.class_filter = filter}, &scratch, &c).ok());
  ASSERT_TRUE(DecodeYoloOutput(out.View(), {}, &scratch, &c).ok());
  EXPECT_EQ(HeapAllocations(), before);
  EXPECT_GT(c.size(), 0u);
}

}  // namespace
}  // namespace visionserve::detect
