#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/preprocess/preprocess.h"
#include "tests/server/preprocess/test_images.h"

namespace visionserve::preprocess {
namespace {

using ::testing::HasSubstr;

void ExpectInvalid(const absl::Status& s, const std::string& substring) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(substring));
}

size_t FloatsFor(const ClassifySpec& spec) { return size_t(spec.crop_size) * spec.crop_size * 3; }

TEST(PreprocessTest, NormalizesLikeToTensorThenNormalize) {
  // An image already at 256x256 is only cropped, so every output is the float32 formula applied
  // to one source byte: (float(x) / 255 - mean) / std, evaluated in float as torch does.
  const auto src = testing::RandomBytes(256 * 256 * 3, 11);
  Image img{256, 256, src};
  ClassifySpec spec;
  std::vector<float> out(FloatsFor(spec));
  ASSERT_TRUE(Preprocess(img, spec, out).ok());
  for (int y = 0; y < 224; ++y) {
    for (int x = 0; x < 224; ++x) {
      for (int c = 0; c < 3; ++c) {
        const uint8_t v = src[((size_t(y) + 16) * 256 + x + 16) * 3 + c];
        const float want = (float(v) / 255.0f - spec.mean[c]) / spec.stddev[c];
        const float got = out[(size_t(y) * 224 + x) * 3 + c];
        ASSERT_EQ(got, want) << y << "," << x << "," << c;
        // And within float rounding of the exact value.
        ASSERT_NEAR(got, (v / 255.0 - double(spec.mean[c])) / double(spec.stddev[c]), 1e-5);
      }
    }
  }
}

TEST(PreprocessTest, PreprocessEqualsResizeCropThenNormalize) {
  ClassifySpec spec;
  spec.resize_size = 320;
  spec.crop_size = 300;
  spec.interpolation = Interpolation::kBicubic;
  spec.mean = {0.5f, 0.25f, 0.125f};
  spec.stddev = {0.5f, 2.0f, 0.1f};
  Image img{333, 250, testing::MakeRgb(333, 250, 4)};
  absl::StatusOr<Image> crop = ResizeAndCenterCrop(img, spec);
  ASSERT_TRUE(crop.ok());
  std::vector<float> out(FloatsFor(spec));
  ASSERT_TRUE(Preprocess(img, spec, out).ok());
  for (size_t i = 0; i < out.size(); ++i) {
    const int c = int(i % 3);
    ASSERT_EQ(out[i], (float(crop->rgb[i]) / 255.0f - spec.mean[c]) / spec.stddev[c]) << i;
  }
}

TEST(PreprocessTest, RawRgbMatchesImagePath) {
  const int h = 123, w = 77;
  const auto src = testing::MakeRgb(w, h, 8);
  ClassifySpec spec;
  std::vector<float> a(FloatsFor(spec)), b(FloatsFor(spec));
  ASSERT_TRUE(PreprocessRawRgb(src, h, w, spec, Limits{}, a).ok());
  ASSERT_TRUE(Preprocess(Image{w, h, src}, spec, b).ok());
  EXPECT_EQ(a, b);
}

TEST(PreprocessTest, RawRgbRejectsBadShapes) {
  ClassifySpec spec;
  std::vector<float> out(FloatsFor(spec));
  std::vector<uint8_t> bytes(10 * 20 * 3);
  ExpectInvalid(PreprocessRawRgb(std::span(bytes).first(599), 10, 20, spec, Limits{}, out),
                "raw RGB tensor of shape [10, 20, 3] needs 600 bytes, got 599");
  ExpectInvalid(PreprocessRawRgb(bytes, 20, 20, spec, Limits{}, out), "needs 1200 bytes, got 600");
  ExpectInvalid(PreprocessRawRgb(bytes, 0, 20, spec, Limits{}, out),
                "raw RGB tensor has invalid shape [0, 20, 3]");
  ExpectInvalid(PreprocessRawRgb(bytes, 10, -5, spec, Limits{}, out), "invalid shape [10, -5, 3]");
  Limits limits;
  limits.max_pixels = 100;
  ExpectInvalid(PreprocessRawRgb(bytes, 10, 20, spec, limits, out),
                "raw RGB tensor is 20x10 = 200 pixels, over the limit of 100 pixels");
  limits = Limits{};
  limits.max_side = 15;
  ExpectInvalid(PreprocessRawRgb(bytes, 10, 20, spec, limits, out), "at most 15 pixels");
  // A shape whose byte count overflows 32 bits is still just a mismatch.
  ExpectInvalid(PreprocessRawRgb(bytes, 30000, 30000, spec, Limits{}, out), "over the limit");
}

TEST(PreprocessTest, RejectsWrongOutputSize) {
  Image img{8, 8, std::vector<uint8_t>(8 * 8 * 3)};
  std::vector<float> out(224 * 224 * 3 - 1);
  ExpectInvalid(Preprocess(img, ClassifySpec{}, out),
                "output buffer holds 150527 floats; crop_size 224 needs 150528");
}

TEST(PreprocessTest, RejectsBadSpecs) {
  Image img{8, 8, std::vector<uint8_t>(8 * 8 * 3)};
  std::vector<float> out(224 * 224 * 3);
  ClassifySpec spec;
  spec.resize_size = 100000;
  ExpectInvalid(Preprocess(img, spec, out), "resize_size=100000");
  spec = ClassifySpec{};
  spec.mean[2] = std::numeric_limits<float>::quiet_NaN();
  ExpectInvalid(Preprocess(img, spec, out), "channel 2");
  spec = ClassifySpec{};
  spec.interpolation = static_cast<Interpolation>(7);
  ExpectInvalid(Preprocess(img, spec, out), "unknown interpolation 7");
}

TEST(PreprocessTest, FloatTensorIsCheckedAndCopied) {
  const int crop = 4;
  std::vector<float> values(crop * crop * 3);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i) * 0.5f - 3;
  const int64_t shape[] = {crop, crop, 3};
  std::vector<float> out(values.size());
  ASSERT_TRUE(CheckPreprocessedFloat(values, shape, crop, out).ok());
  EXPECT_EQ(out, values);
}

TEST(PreprocessTest, FloatTensorRejectsWrongShape) {
  std::vector<float> values(224 * 224 * 3), out(values.size());
  const int64_t nchw[] = {1, 3, 224, 224};
  ExpectInvalid(CheckPreprocessedFloat(values, nchw, 224, out),
                "float tensor has shape [1, 3, 224, 224]; expected [224, 224, 3] (HWC)");
  const int64_t chw[] = {3, 224, 224};
  ExpectInvalid(CheckPreprocessedFloat(values, chw, 224, out), "shape [3, 224, 224]");
  const int64_t hwc[] = {224, 224, 3};
  ExpectInvalid(CheckPreprocessedFloat(std::span(values).first(100), hwc, 224, out),
                "needs 150528 values, got 100");
  ExpectInvalid(CheckPreprocessedFloat(values, hwc, 224, std::span(out).first(5)),
                "output buffer holds 5 floats");
  const int64_t negative[] = {-224, 224, 3};
  ExpectInvalid(CheckPreprocessedFloat(values, negative, 224, out), "shape [-224, 224, 3]");
}

TEST(PreprocessTest, FloatTensorRejectsNanAndInfNamingTheFirstBadIndex) {
  const int crop = 8;
  const int64_t shape[] = {crop, crop, 3};
  std::vector<float> out(crop * crop * 3);
  struct Case {
    size_t index;
    float value;
    std::string message;
  };
  const Case cases[] = {
      {0, std::numeric_limits<float>::quiet_NaN(), "element 0 (h=0, w=0, c=0) is NaN"},
      {100, std::numeric_limits<float>::infinity(), "element 100 (h=4, w=1, c=1) is +Inf"},
      {191, -std::numeric_limits<float>::infinity(), "element 191 (h=7, w=7, c=2) is -Inf"},
  };
  for (const Case& c : cases) {
    std::vector<float> values(crop * crop * 3, 0.5f);
    values[c.index] = c.value;
    if (c.index + 1 < values.size()) values.back() = std::numeric_limits<float>::quiet_NaN();
    ExpectInvalid(CheckPreprocessedFloat(values, shape, crop, out), c.message);
  }
}

TEST(PreprocessTest, DecodeAndPreprocessUsesDctScaling) {
  const int w = 1024, h = 768;
  const auto rgb = testing::MakeRgb(w, h, 3, /*noise=*/0);
  const auto jpeg = testing::EncodeJpeg(rgb, w, h, TJPF_RGB, TJSAMP_420, 95, 0);
  ClassifySpec spec;
  std::vector<float> fast(FloatsFor(spec)), full(FloatsFor(spec));
  ASSERT_TRUE(DecodeAndPreprocess(jpeg, spec, Limits{}, fast).ok());
  absl::StatusOr<Image> img = Decode(jpeg, Limits{});
  ASSERT_TRUE(img.ok());
  ASSERT_TRUE(Preprocess(*img, spec, full).ok());
  // 1/2-scale decode (384 >= 256) vs full decode: close on smooth content, but not identical.
  double sum = 0;
  for (size_t i = 0; i < fast.size(); ++i) sum += std::fabs(fast[i] - full[i]);
  EXPECT_LT(sum / fast.size(), 0.05);
  EXPECT_NE(fast, full);
  ExpectInvalid(DecodeAndPreprocess({}, spec, Limits{}, fast), "empty");
}

// The gRPC layer calls these from concurrent TBB tasks: same results as a serial run.
TEST(PreprocessConcurrencyTest, ConcurrentDecodeAndPreprocessMatchesSerial) {
  struct Job {
    std::vector<uint8_t> bytes;
    ClassifySpec spec;
  };
  std::vector<Job> jobs;
  for (int i = 0; i < 12; ++i) {
    const int w = 180 + 37 * i, h = 300 - 11 * i;
    const auto rgb = testing::MakeRgb(w, h, i);
    Job job;
    job.bytes = (i % 2) ? testing::EncodeRgbPng(rgb, w, h)
                        : testing::EncodeJpeg(rgb, w, h, TJPF_RGB, TJSAMP_420, 90, 0);
    job.spec.interpolation = (i % 3) ? Interpolation::kBilinear : Interpolation::kBicubic;
    if (i % 4 == 0) {
      job.spec.resize_size = 160;
      job.spec.crop_size = 128;
    }
    jobs.push_back(std::move(job));
  }
  const auto run = [](const Job& job) {
    std::vector<float> out(FloatsFor(job.spec));
    absl::Status s = DecodeAndPreprocess(job.bytes, job.spec, Limits{}, out);
    EXPECT_TRUE(s.ok()) << s;
    return out;
  };
  std::vector<std::vector<float>> serial;
  for (const Job& job : jobs) serial.push_back(run(job));

  constexpr int kThreads = 6, kRounds = 3;
  std::vector<std::vector<std::vector<float>>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        for (size_t j = 0; j < jobs.size(); ++j) {
          results[t].push_back(run(jobs[(j + t) % jobs.size()]));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(results[t].size(), jobs.size() * kRounds);
    for (size_t k = 0; k < results[t].size(); ++k) {
      ASSERT_EQ(results[t][k], serial[(k % jobs.size() + t) % jobs.size()])
          << "thread " << t << " result " << k;
    }
  }
}

}  // namespace
}  // namespace visionserve::preprocess
