#include "server/detect/postprocess.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "tests/engine/alloc_counter.h"

namespace visionserve::detect {
namespace {

// A hand-set [4 + C, A] output for a 999 x 17 photo letterboxed to 640 x 640: known boxes come
// back in the photo's pixels.
TEST(PostprocessYoloOutputTest, KnownBoxesComeBackInOriginalPixels) {
  auto g = ComputeLetterbox(999, 17, 640, 640);  // resized 640 x 11 at pad_top 314
  ASSERT_TRUE(g.ok());
  constexpr int kClasses = 3;
  constexpr int64_t kAnchors = 10;
  std::vector<float> out((4 + kClasses) * kAnchors, 0.0f);
  auto set = [&](int64_t a, Box original, int cls, float score) {
    const Box in = MapToInput(*g, original);
    out[a] = (in.x1 + in.x2) / 2;
    out[kAnchors + a] = (in.y1 + in.y2) / 2;
    out[2 * kAnchors + a] = in.x2 - in.x1;
    out[3 * kAnchors + a] = in.y2 - in.y1;
    out[(4 + cls) * kAnchors + a] = score;
  };
  set(1, {100, 2, 300, 15}, 2, 0.9f);
  set(4, {102, 2, 301, 15}, 2, 0.8f);    // duplicate of anchor 1: suppressed
  set(5, {102, 2, 301, 15}, 0, 0.7f);    // same box, another class: kept
  set(7, {900, -5, 1100, 10}, 1, 0.6f);  // overhangs the right and top edges: clipped
  PostprocessScratch scratch;
  std::vector<Detection> dets;
  ASSERT_TRUE(PostprocessYoloOutput({out, kClasses, kAnchors}, *g, {.score_threshold = 0.25f},
                                    {.iou_threshold = 0.5f, .max_detections = 100}, &scratch, &dets)
                  .ok());
  ASSERT_EQ(dets.size(), 3u);
  EXPECT_EQ(dets[0].class_id, 2);
  EXPECT_FLOAT_EQ(dets[0].score, 0.9f);
  EXPECT_NEAR(dets[0].box.x1, 100, 1e-3);
  EXPECT_NEAR(dets[0].box.y1, 2, 1e-3);
  EXPECT_NEAR(dets[0].box.x2, 300, 1e-3);
  EXPECT_NEAR(dets[0].box.y2, 15, 1e-3);
  EXPECT_EQ(dets[1].class_id, 0);
  EXPECT_NEAR(dets[1].box.x1, 102, 1e-3);
  EXPECT_EQ(dets[2].class_id, 1);
  EXPECT_NEAR(dets[2].box.x1, 900, 1e-3);
  EXPECT_EQ(dets[2].box.y1, 0);
  EXPECT_EQ(dets[2].box.x2, 999);
  EXPECT_NEAR(dets[2].box.y2, 10, 1e-3);

  const int64_t before = HeapAllocations();
  ASSERT_TRUE(PostprocessYoloOutput({out, kClasses, kAnchors}, *g, {}, {}, &scratch, &dets).ok());
  EXPECT_EQ(HeapAllocations(), before);
}

TEST(PostprocessYoloOutputTest, BoxesInThePaddingAloneAreDroppedBeforeNmsAndTheLimit) {
  auto g = ComputeLetterbox(640, 320, 640, 640);  // content rows 160..480
  ASSERT_TRUE(g.ok());
  constexpr int kClasses = 1;
  constexpr int64_t kAnchors = 4;
  std::vector<float> out((4 + kClasses) * kAnchors, 0.0f);
  auto set = [&](int64_t a, Box in, float score) {
    out[a] = (in.x1 + in.x2) / 2;
    out[kAnchors + a] = (in.y1 + in.y2) / 2;
    out[2 * kAnchors + a] = in.x2 - in.x1;
    out[3 * kAnchors + a] = in.y2 - in.y1;
    out[4 * kAnchors + a] = score;
  };
  set(0, {10, 10, 100, 150}, 0.95f);   // top padding only: dropped
  set(1, {10, 10, 100, 170}, 0.9f);    // reaches 10 rows into the image: kept, clipped
  set(2, {10, 500, 100, 640}, 0.85f);  // bottom padding only: dropped
  set(3, {200, 200, 300, 300}, 0.5f);
  PostprocessScratch scratch;
  std::vector<Detection> dets;
  ASSERT_TRUE(PostprocessYoloOutput({out, kClasses, kAnchors}, *g, {.score_threshold = 0.25f},
                                    {.iou_threshold = 0.5f, .max_detections = 2}, &scratch, &dets)
                  .ok());
  ASSERT_EQ(dets.size(), 2u);
  EXPECT_FLOAT_EQ(dets[0].score, 0.9f);
  EXPECT_EQ(dets[0].box.y1, 0);
  EXPECT_NEAR(dets[0].box.y2, 10, 1e-3);
  EXPECT_FLOAT_EQ(dets[1].score, 0.5f);
}

TEST(PostprocessYoloOutputTest, PassesErrorsThrough) {
  auto g = ComputeLetterbox(640, 480, 640, 640);
  ASSERT_TRUE(g.ok());
  std::vector<float> out(84 * 100, 0.0f);
  PostprocessScratch scratch;
  std::vector<Detection> dets;
  EXPECT_EQ(PostprocessYoloOutput({out, 80, 99}, *g, {}, {}, &scratch, &dets).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      PostprocessYoloOutput({out, 80, 100}, *g, {}, {.iou_threshold = -1}, &scratch, &dets).code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace visionserve::detect
