#include "server/detect/letterbox.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/engine/alloc_counter.h"

namespace visionserve::detect {
namespace {

struct GeometryCase {
  int src_w, src_h, dst_w, dst_h;
  bool scale_up;
  int resized_w, resized_h, left, top, right, bottom;
};

// Expected values from Ultralytics' LetterBox formulas evaluated in Python (r, round(), the
// round(d / 2 -/+ 0.1) padding split).
TEST(LetterboxGeometryTest, MatchesUltralyticsLetterBox) {
  const GeometryCase cases[] = {
      {640, 480, 640, 640, true, 640, 480, 0, 80, 0, 80},
      {480, 640, 640, 640, true, 480, 640, 80, 0, 80, 0},
      {999, 17, 640, 640, true, 640, 11, 0, 314, 0, 315},
      {17, 999, 640, 640, true, 11, 640, 314, 0, 315, 0},
      {1, 1000, 640, 640, true, 1, 640, 319, 0, 320, 0},
      {3000, 2000, 640, 640, true, 640, 427, 0, 106, 0, 107},
      {641, 480, 640, 640, true, 640, 479, 0, 80, 0, 81},
      {1279, 719, 640, 640, true, 640, 360, 0, 140, 0, 140},
      {100, 50, 640, 640, true, 640, 320, 0, 160, 0, 160},
      {100, 50, 640, 640, false, 100, 50, 270, 295, 270, 295},
      {1920, 1080, 640, 384, true, 640, 360, 0, 12, 0, 12},
      {333, 333, 320, 416, true, 320, 320, 0, 48, 0, 48},
      {5, 3, 640, 640, true, 640, 384, 0, 128, 0, 128},
      // src * r exactly half-way: Python rounds half to even (2.5 -> 2, 3.5 -> 4).
      {1280, 5, 640, 640, true, 640, 2, 0, 319, 0, 319},
      {1280, 7, 640, 640, true, 640, 4, 0, 318, 0, 318},
  };
  for (const GeometryCase& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.src_w, "x", c.src_h, " -> ", c.dst_w, "x", c.dst_h));
    auto g = ComputeLetterbox(c.src_w, c.src_h, c.dst_w, c.dst_h, {.scale_up = c.scale_up});
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(g->resized_width, c.resized_w);
    EXPECT_EQ(g->resized_height, c.resized_h);
    EXPECT_EQ(g->pad_left, c.left);
    EXPECT_EQ(g->pad_top, c.top);
    EXPECT_EQ(g->pad_right, c.right);
    EXPECT_EQ(g->pad_bottom, c.bottom);
    EXPECT_EQ(g->pad_left + g->resized_width + g->pad_right, c.dst_w);
    EXPECT_EQ(g->pad_top + g->resized_height + g->pad_bottom, c.dst_h);
  }
}

TEST(LetterboxGeometryTest, ExtremeAspectKeepsAtLeastOnePixel) {
  auto g = ComputeLetterbox(1, 30000, 640, 640);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->resized_width, 1);  // round(1 * 640 / 30000) would be 0
  EXPECT_EQ(g->resized_height, 640);
  EXPECT_EQ(g->pad_left, 319);
  EXPECT_EQ(g->pad_right, 320);
}

TEST(LetterboxGeometryTest, RejectsBadSizes) {
  EXPECT_EQ(ComputeLetterbox(0, 10, 640, 640).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeLetterbox(10, -1, 640, 640).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeLetterbox(10, 10, 0, 640).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeLetterbox(kMaxLetterboxSide + 1, 10, 640, 640).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Random boxes in original pixels -> model input -> back: equal within 1e-3 px.
TEST(LetterboxGeometryTest, BoxesRoundTripExactly) {
  const std::tuple<int, int, int, int> sizes[] = {
      {1, 1000, 640, 640},   {999, 17, 640, 640}, {640, 480, 640, 640}, {3000, 2000, 640, 640},
      {1279, 719, 416, 416}, {7, 5, 640, 384},    {4000, 3, 320, 320}};
  std::mt19937 rng(7);
  for (auto [sw, sh, dw, dh] : sizes) {
    SCOPED_TRACE(absl::StrCat(sw, "x", sh, " -> ", dw, "x", dh));
    auto g = ComputeLetterbox(sw, sh, dw, dh);
    ASSERT_TRUE(g.ok());
    std::uniform_real_distribution<float> ux(0, static_cast<float>(sw));
    std::uniform_real_distribution<float> uy(0, static_cast<float>(sh));
    for (int i = 0; i < 2000; ++i) {
      const Box b{ux(rng), uy(rng), ux(rng), uy(rng)};
      const Box in = MapToInput(*g, b);
      // The forward map lands inside the resized image's window of the input.
      EXPECT_GE(in.x1, g->pad_left - 1e-3f);
      EXPECT_LE(in.x1, g->pad_left + g->resized_width + 1e-3f);
      EXPECT_GE(in.y1, g->pad_top - 1e-3f);
      EXPECT_LE(in.y1, g->pad_top + g->resized_height + 1e-3f);
      const Box back = MapToOriginal(*g, in);
      ASSERT_NEAR(back.x1, b.x1, 1e-3f);
      ASSERT_NEAR(back.y1, b.y1, 1e-3f);
      ASSERT_NEAR(back.x2, b.x2, 1e-3f);
      ASSERT_NEAR(back.y2, b.y2, 1e-3f);
    }
  }
}

// The image corners map to the corners of the resized window, whatever the rounding.
TEST(LetterboxGeometryTest, ImageCornersMapToResizedWindow) {
  auto g = ComputeLetterbox(999, 17, 640, 640);
  ASSERT_TRUE(g.ok());
  const Box in = MapToInput(*g, {0, 0, 999, 17});
  EXPECT_FLOAT_EQ(in.x1, 0);
  EXPECT_FLOAT_EQ(in.y1, 314);
  EXPECT_FLOAT_EQ(in.x2, 640);
  EXPECT_FLOAT_EQ(in.y2, 325);
  const Box back = MapToOriginal(*g, {0, 314, 640, 325});
  EXPECT_FLOAT_EQ(back.x2, 999);
  EXPECT_FLOAT_EQ(back.y2, 17);
}

TEST(LetterboxGeometryTest, ClipsToTheOriginalImage) {
  auto g = ComputeLetterbox(640, 480, 640, 640);  // pad_top 80
  ASSERT_TRUE(g.ok());
  std::vector<float> boxes = {
      -20, 10,  700, 700,  // overhangs every side once mapped
      100, 0,   200, 50,   // entirely in the top padding: y -80..-30 -> clamped to 0
      10,  100, 20,  110,  // inside: only shifted
  };
  ASSERT_TRUE(MapBoxesToOriginal(*g, boxes).ok());
  EXPECT_EQ(boxes[0], 0);
  EXPECT_EQ(boxes[1], 0);
  EXPECT_EQ(boxes[2], 640);
  EXPECT_EQ(boxes[3], 480);
  EXPECT_EQ(boxes[4], 100);
  EXPECT_EQ(boxes[5], 0);
  EXPECT_EQ(boxes[6], 200);
  EXPECT_EQ(boxes[7], 0);  // degenerate on the border
  EXPECT_EQ(boxes[8], 10);
  EXPECT_EQ(boxes[9], 20);
  EXPECT_EQ(boxes[10], 20);
  EXPECT_EQ(boxes[11], 30);
  std::vector<float> ragged(6);
  EXPECT_EQ(MapBoxesToOriginal(*g, ragged).code(), absl::StatusCode::kInvalidArgument);
}

std::vector<uint8_t> RandomImage(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> img(static_cast<size_t>(w) * h * 3);
  for (auto& v : img) v = static_cast<uint8_t>(rng());
  return img;
}

TEST(LetterboxImageTest, EqualsReferenceBitForBit) {
  const std::tuple<int, int, int, int> sizes[] = {
      {1, 1, 8, 8},   {1, 1000, 64, 64}, {999, 17, 96, 96}, {64, 48, 64, 64}, {300, 200, 64, 64},
      {5, 3, 64, 40}, {13, 29, 32, 48},  {33, 33, 33, 33},  {2, 1, 640, 640}, {200, 100, 37, 53}};
  LetterboxScratch scratch;
  LetterboxNormalize norms[2];
  norms[1].mean = {0.485f, 0.456f, 0.406f};
  norms[1].stddev = {0.229f, 0.224f, 0.225f};
  for (auto [sw, sh, dw, dh] : sizes) {
    for (bool scale_up : {true, false}) {
      for (const LetterboxNormalize& norm : norms) {
        SCOPED_TRACE(absl::StrCat(sw, "x", sh, " -> ", dw, "x", dh, " scale_up ", scale_up,
                                  " mean ", norm.mean[0]));
        auto g = ComputeLetterbox(sw, sh, dw, dh, {.scale_up = scale_up});
        ASSERT_TRUE(g.ok());
        const auto img = RandomImage(sw, sh, sw * 31 + sh);
        std::vector<float> fast(static_cast<size_t>(dw) * dh * 3, -1);
        std::vector<float> ref(fast.size(), -2);
        ASSERT_TRUE(LetterboxImage(img, *g, norm, &scratch, fast).ok());
        ASSERT_TRUE(LetterboxImageRef(img, *g, norm, ref).ok());
        for (size_t i = 0; i < fast.size(); ++i) {
          ASSERT_EQ(fast[i], ref[i]) << "index " << i;
        }
      }
    }
  }
}

TEST(LetterboxImageTest, PadsWithUltralyticsGrayAndScalesToUnitRange) {
  auto g = ComputeLetterbox(4, 2, 8, 8);  // resized 8x4, pad_top 2, pad_bottom 2
  ASSERT_TRUE(g.ok());
  const std::vector<uint8_t> img(4 * 2 * 3, 255);
  std::vector<float> out(8 * 8 * 3);
  LetterboxScratch scratch;
  ASSERT_TRUE(LetterboxImage(img, *g, {}, &scratch, out).ok());
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) {
      for (int c = 0; c < 3; ++c) {
        const float v = out[(y * 8 + x) * 3 + c];
        if (y < 2 || y >= 6) {
          EXPECT_EQ(v, 114.0f / 255.0f) << y << "," << x;
        } else {
          EXPECT_EQ(v, 1.0f) << y << "," << x;  // a constant image stays constant
        }
      }
    }
  }
}

TEST(LetterboxImageTest, SameSizeIsACopy) {
  auto g = ComputeLetterbox(37, 23, 37, 23);
  ASSERT_TRUE(g.ok());
  ASSERT_EQ(g->resized_width, 37);
  const auto img = RandomImage(37, 23, 3);
  std::vector<float> out(img.size());
  LetterboxNormalize norm;
  norm.mean = {0.5f, 0.25f, 0.0f};
  norm.stddev = {2.0f, 0.5f, 1.0f};
  LetterboxScratch scratch;
  ASSERT_TRUE(LetterboxImage(img, *g, norm, &scratch, out).ok());
  for (size_t i = 0; i < img.size(); ++i) {
    const int c = static_cast<int>(i % 3);
    ASSERT_EQ(out[i], (img[i] / 255.0f - norm.mean[c]) / norm.stddev[c]) << i;
  }
}

// Upscaling 2 -> 4 pixels with half-pixel centers: samples at 0.25 and 0.75 of the way.
TEST(LetterboxImageTest, BilinearUsesHalfPixelCentersAndClampsEdges) {
  auto g = ComputeLetterbox(2, 1, 4, 2);  // resized 4x2, no padding
  ASSERT_TRUE(g.ok());
  ASSERT_EQ(g->resized_width, 4);
  ASSERT_EQ(g->resized_height, 2);
  const std::vector<uint8_t> img = {0, 0, 0, 200, 100, 40};
  std::vector<float> out(4 * 2 * 3);
  LetterboxScratch scratch;
  ASSERT_TRUE(LetterboxImage(img, *g, {}, &scratch, out).ok());
  // x = 0 -> source -0.25, clamped to pixel 0; x = 1 -> 0.25; x = 2 -> 0.75; x = 3 -> clamped 1.
  const float expect_r[4] = {0, 50, 150, 200};
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 4; ++x) EXPECT_EQ(out[(y * 4 + x) * 3], expect_r[x] / 255.0f) << x;
  }
  EXPECT_EQ(out[1 * 3 + 2], 10.0f / 255.0f);  // 40 * 0.25
}

TEST(LetterboxImageTest, RejectsBadArguments) {
  auto g = ComputeLetterbox(4, 4, 8, 8);
  ASSERT_TRUE(g.ok());
  std::vector<uint8_t> img(4 * 4 * 3);
  std::vector<float> out(8 * 8 * 3);
  LetterboxScratch scratch;
  std::vector<uint8_t> short_img(10);
  EXPECT_EQ(LetterboxImage(short_img, *g, {}, &scratch, out).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<float> short_out(10);
  EXPECT_EQ(LetterboxImage(img, *g, {}, &scratch, short_out).code(),
            absl::StatusCode::kInvalidArgument);
  LetterboxNormalize zero_std;
  zero_std.stddev[1] = 0;
  EXPECT_EQ(LetterboxImage(img, *g, zero_std, &scratch, out).code(),
            absl::StatusCode::kInvalidArgument);
  LetterboxNormalize nan_mean;
  nan_mean.mean[2] = std::nanf("");
  EXPECT_EQ(LetterboxImageRef(img, *g, nan_mean, out).code(), absl::StatusCode::kInvalidArgument);
  LetterboxGeometry bogus = *g;
  bogus.pad_left = 7;  // resized window no longer fits
  EXPECT_EQ(LetterboxImage(img, bogus, {}, &scratch, out).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LetterboxImageTest, WarmScratchAllocatesNothing) {
  auto big = ComputeLetterbox(300, 200, 640, 640);
  auto small = ComputeLetterbox(999, 17, 320, 320);
  ASSERT_TRUE(big.ok() && small.ok());
  const auto img_big = RandomImage(300, 200, 1);
  const auto img_small = RandomImage(999, 17, 2);
  std::vector<float> out(640 * 640 * 3);
  std::span<float> out_small(out.data(), 320 * 320 * 3);
  LetterboxScratch scratch;
  ASSERT_TRUE(LetterboxImage(img_big, *big, {}, &scratch, out).ok());
  const int64_t before = HeapAllocations();
  ASSERT_TRUE(LetterboxImage(img_big, *big, {}, &scratch, out).ok());
  ASSERT_TRUE(LetterboxImage(img_small, *small, {}, &scratch, out_small).ok());
  EXPECT_EQ(HeapAllocations(), before);
}

}  // namespace
}  // namespace visionserve::detect
