#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/preprocess/preprocess.h"
#include "server/preprocess/resample.h"
#include "tests/server/preprocess/test_images.h"

namespace visionserve::preprocess {
namespace {

using ::testing::HasSubstr;

// ---- plain double-precision reference (direct formula, no fixed point, no tap tables) ----

double RefKernel(Interpolation interpolation, double x) {
  x = std::fabs(x);
  if (interpolation == Interpolation::kBilinear) return x < 1 ? 1 - x : 0;
  const double a = -0.5;
  if (x < 1) return (a + 2) * x * x * x - (a + 3) * x * x + 1;
  if (x < 2) return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a;
  return 0;
}

// One separable pass along x (horizontal) or y, rounding to 8 bits like Pillow's intermediate.
std::vector<uint8_t> RefPass(const std::vector<uint8_t>& in, int w, int h, int out_len,
                             bool horizontal, Interpolation interpolation, bool antialias) {
  const int in_len = horizontal ? w : h;
  if (in_len == out_len) return in;
  const int ow = horizontal ? out_len : w, oh = horizontal ? h : out_len;
  const double scale = double(in_len) / out_len;
  const double fs = antialias ? std::max(scale, 1.0) : 1.0;
  const double support = (interpolation == Interpolation::kBilinear ? 1 : 2) * fs;
  std::vector<uint8_t> out(size_t(ow) * oh * 3);
  for (int o = 0; o < out_len; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(0, int(std::floor(center - support - 1)));
    const int hi = std::min(in_len, int(std::ceil(center + support + 1)));
    std::vector<double> wts;
    double norm = 0;
    for (int i = lo; i < hi; ++i) {
      wts.push_back(RefKernel(interpolation, (i + 0.5 - center) / fs));
      norm += wts.back();
    }
    const int lines = horizontal ? h : w;
    for (int l = 0; l < lines; ++l) {
      for (int c = 0; c < 3; ++c) {
        double acc = 0;
        for (int i = lo; i < hi; ++i) {
          const int x = horizontal ? i : l, y = horizontal ? l : i;
          acc += wts[i - lo] * in[(size_t(y) * w + x) * 3 + c];
        }
        const int x = horizontal ? o : l, y = horizontal ? l : o;
        out[(size_t(y) * ow + x) * 3 + c] =
            uint8_t(std::clamp(std::floor(acc / norm + 0.5), 0.0, 255.0));
      }
    }
  }
  return out;
}

std::vector<uint8_t> Resample(const std::vector<uint8_t>& in, int w, int h, int rw, int rh,
                              Interpolation interpolation, bool antialias, int left, int top,
                              int ow, int oh) {
  std::vector<uint8_t> out(size_t(ow) * oh * 3, 0xAB);
  ResampleWindow(RgbView{in.data(), w, h}, rw, rh, interpolation, antialias, left, top, ow, oh,
                 out.data());
  return out;
}

// ---------------------------------------------------------------------------------------------

TEST(ResizeTest, ResizedSizeFollowsTorchvision) {
  struct Case {
    int w, h, size, want_w, want_h;
  };
  const Case cases[] = {
      {500, 375, 256, 341, 256},   {375, 500, 256, 256, 341},   {256, 256, 256, 256, 256},
      {640, 480, 256, 341, 256},   {1000, 7, 256, 36571, 256},  {7, 300, 256, 256, 10971},
      {3, 300, 7, 7, 700},         {1, 1000, 256, 256, 256000}, {50, 40, 256, 320, 256},
      {1920, 1080, 320, 568, 320}, {333, 333, 224, 224, 224},   {334, 333, 224, 224, 224},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Size2> s = ResizedSize(c.w, c.h, c.size);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->width, c.want_w) << c.w << "x" << c.h << " -> " << c.size;
    EXPECT_EQ(s->height, c.want_h) << c.w << "x" << c.h << " -> " << c.size;
  }
  EXPECT_THAT(std::string(ResizedSize(1, INT_MAX, 8192).status().message()),
              HasSubstr("gives a longer side over"));
  EXPECT_FALSE(ResizedSize(0, 10, 256).ok());
}

TEST(ResizeTest, CenterCropOffsetRoundsHalfToEvenAndPads) {
  EXPECT_EQ(CenterCropOffset(224, 224), 0);
  EXPECT_EQ(CenterCropOffset(256, 224), 16);
  EXPECT_EQ(CenterCropOffset(257, 224), 16);   // round(16.5) == 16
  EXPECT_EQ(CenterCropOffset(259, 224), 18);   // round(17.5) == 18
  EXPECT_EQ(CenterCropOffset(341, 224), 58);   // round(58.5) == 58
  EXPECT_EQ(CenterCropOffset(343, 224), 60);   // round(59.5) == 60
  EXPECT_EQ(CenterCropOffset(225, 224), 0);    // round(0.5) == 0
  EXPECT_EQ(CenterCropOffset(200, 224), -12);  // pad left (224 - 200) // 2
  EXPECT_EQ(CenterCropOffset(201, 224), -11);  // pad left 23 // 2, right 12
}

struct RefCase {
  int w, h, rw, rh;
};

// Compares n bytes: every difference at most 1, and few of them. Off-by-one results come from
// exact .5 ties, which rational scale factors make common (7 -> 20 rows: taps are multiples of
// 1/20) and which Pillow's 22-bit fixed-point taps break either way. Exact Pillow parity is
// checked in pil_parity_test.cc.
void ExpectWithinOne(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want) {
  ASSERT_EQ(got.size(), want.size());
  size_t off_by_one = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(std::abs(int{got[i]} - int{want[i]}), 1) << "at " << i;
    off_by_one += got[i] != want[i];
  }
  EXPECT_LE(off_by_one, got.size() / 20 + 1);
}

// Each separable pass against the double-precision formula (within 1), and the full resize is
// exactly the vertical pass applied to the 8-bit horizontal result, as in Pillow.
TEST(ResizeTest, MatchesDoublePrecisionReferenceWithinOne) {
  const RefCase cases[] = {
      {37, 23, 25, 16},     {23, 37, 50, 80},    {100, 7, 285, 20}, {7, 100, 5, 71},
      {300, 200, 192, 128}, {97, 131, 256, 345}, {1000, 3, 666, 2}, {40, 30, 40, 17},
      {40, 30, 13, 30},     {16, 16, 224, 224},  {2, 2, 3, 3},      {1, 1, 5, 5},
  };
  for (Interpolation interp : {Interpolation::kBilinear, Interpolation::kBicubic}) {
    for (bool antialias : {true, false}) {
      for (const RefCase& c : cases) {
        SCOPED_TRACE(::testing::Message() << c.w << "x" << c.h << " -> " << c.rw << "x" << c.rh
                                          << " bicubic=" << (interp == Interpolation::kBicubic)
                                          << " antialias=" << antialias);
        const auto src = testing::RandomBytes(size_t(c.w) * c.h * 3, c.w * 131 + c.h);
        const auto horiz = Resample(src, c.w, c.h, c.rw, c.h, interp, antialias, 0, 0, c.rw, c.h);
        ExpectWithinOne(horiz, RefPass(src, c.w, c.h, c.rw, true, interp, antialias));
        const auto vert =
            Resample(horiz, c.rw, c.h, c.rw, c.rh, interp, antialias, 0, 0, c.rw, c.rh);
        ExpectWithinOne(vert, RefPass(horiz, c.rw, c.h, c.rh, false, interp, antialias));
        EXPECT_EQ(Resample(src, c.w, c.h, c.rw, c.rh, interp, antialias, 0, 0, c.rw, c.rh), vert);
      }
    }
  }
}

TEST(ResizeTest, WindowEqualsCropOfFullResize) {
  std::mt19937 rng(7);
  for (Interpolation interp : {Interpolation::kBilinear, Interpolation::kBicubic}) {
    for (const RefCase& c : {RefCase{90, 70, 45, 35}, RefCase{30, 50, 77, 128}}) {
      const auto src = testing::RandomBytes(size_t(c.w) * c.h * 3, 99);
      const auto full = Resample(src, c.w, c.h, c.rw, c.rh, interp, true, 0, 0, c.rw, c.rh);
      for (int iter = 0; iter < 20; ++iter) {
        // Windows may stick out of the resized image on any side: those pixels must be 0.
        const int ow = 1 + int(rng() % (c.rw + 10)), oh = 1 + int(rng() % (c.rh + 10));
        const int left = int(rng() % (c.rw + 10)) - 5, top = int(rng() % (c.rh + 10)) - 5;
        const auto win = Resample(src, c.w, c.h, c.rw, c.rh, interp, true, left, top, ow, oh);
        for (int y = 0; y < oh; ++y) {
          for (int x = 0; x < ow; ++x) {
            const int fx = left + x, fy = top + y;
            const bool inside = fx >= 0 && fy >= 0 && fx < c.rw && fy < c.rh;
            for (int ch = 0; ch < 3; ++ch) {
              const uint8_t want = inside ? full[(size_t(fy) * c.rw + fx) * 3 + ch] : 0;
              ASSERT_EQ(win[(size_t(y) * ow + x) * 3 + ch], want)
                  << "window " << left << "," << top << " " << ow << "x" << oh << " at " << x << ","
                  << y;
            }
          }
        }
      }
    }
  }
}

TEST(ResizeTest, ImageAlreadyAtResizeSizeIsOnlyCropped) {
  const int w = 256, h = 301;
  const auto src = testing::RandomBytes(size_t(w) * h * 3, 5);
  Image img{w, h, src};
  absl::StatusOr<Image> out = ResizeAndCenterCrop(img, ClassifySpec{});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->width, 224);
  ASSERT_EQ(out->height, 224);
  const int left = 16, top = 38;  // round(32 / 2), round(77 / 2) == round(38.5) == 38
  for (int y = 0; y < 224; ++y) {
    for (int x = 0; x < 224 * 3; ++x) {
      ASSERT_EQ(out->rgb[size_t(y) * 224 * 3 + x], src[(size_t(y + top) * w + left) * 3 + x]);
    }
  }
}

TEST(ResizeTest, SmallerResizeThanCropIsZeroPadded) {
  ClassifySpec spec;
  spec.resize_size = 200;
  spec.crop_size = 224;
  Image img{100, 100, std::vector<uint8_t>(100 * 100 * 3, 200)};
  absl::StatusOr<Image> out = ResizeAndCenterCrop(img, spec);
  ASSERT_TRUE(out.ok()) << out.status();
  const auto at = [&](int x, int y) { return out->rgb[(size_t(y) * 224 + x) * 3]; };
  EXPECT_EQ(at(11, 11), 0);
  EXPECT_EQ(at(12, 12), 200);
  EXPECT_EQ(at(211, 211), 200);
  EXPECT_EQ(at(212, 212), 0);
}

TEST(ResizeTest, TinyResizeWithLargeCropIsMostlyPadding) {
  // 600x300 -> 2x1 resized (filter support 300 source pixels per output), 5x5 crop: only the
  // two real pixels own filter taps.
  ClassifySpec spec;
  spec.resize_size = 1;
  spec.crop_size = 5;
  Image img{600, 300, std::vector<uint8_t>(600 * 300 * 3, 100)};
  absl::StatusOr<Image> out = ResizeAndCenterCrop(img, spec);
  ASSERT_TRUE(out.ok()) << out.status();
  // Padding: left (5 - 2) // 2 = 1, top (5 - 1) // 2 = 2.
  for (int y = 0; y < 5; ++y) {
    for (int x = 0; x < 5; ++x) {
      const bool inside = y == 2 && (x == 1 || x == 2);
      EXPECT_EQ(out->rgb[(size_t(y) * 5 + x) * 3], inside ? 100 : 0) << x << "," << y;
    }
  }
}

TEST(ResizeTest, ExtremeAspectRatiosStayCheap) {
  // 1x20000 -> 256 x 5120000 resized; only the 224x224 window is computed.
  Image img{1, 20000, testing::RandomBytes(20000 * 3, 1)};
  absl::StatusOr<Image> out = ResizeAndCenterCrop(img, ClassifySpec{});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->rgb.size(), size_t(224) * 224 * 3);
  Image wide{20000, 2, testing::RandomBytes(20000 * 2 * 3, 2)};
  ClassifySpec bicubic;
  bicubic.interpolation = Interpolation::kBicubic;
  EXPECT_TRUE(ResizeAndCenterCrop(wide, bicubic).ok());
}

TEST(ResizeTest, RejectsMalformedImagesAndSpecs) {
  Image bad{10, 10, std::vector<uint8_t>(299)};
  EXPECT_THAT(std::string(ResizeAndCenterCrop(bad, ClassifySpec{}).status().message()),
              HasSubstr("malformed image: 10x10 with 299 bytes"));
  Image ok{10, 10, std::vector<uint8_t>(300)};
  ClassifySpec spec;
  spec.crop_size = 0;
  absl::Status s = ResizeAndCenterCrop(ok, spec).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("crop_size=0 is out of range"));
  spec = ClassifySpec{};
  spec.stddev[1] = 0;
  EXPECT_THAT(std::string(ResizeAndCenterCrop(ok, spec).status().message()),
              HasSubstr("channel 1 has mean"));
}

}  // namespace
}  // namespace visionserve::preprocess
