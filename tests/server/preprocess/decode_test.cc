#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/preprocess/preprocess.h"
#include "tests/server/preprocess/test_images.h"

namespace visionserve::preprocess {
namespace {

using testing::EncodeJpeg;
using testing::EncodeRgbPng;
using ::testing::HasSubstr;
using testing::MakeRgb;

struct DiffStats {
  int max_abs = 0;
  double mean_abs = 0;
};

DiffStats Diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  DiffStats d;
  if (a.size() != b.size() || a.empty()) return DiffStats{999, 999};
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const int e = std::abs(int{a[i]} - int{b[i]});
    d.max_abs = std::max(d.max_abs, e);
    sum += e;
  }
  d.mean_abs = sum / a.size();
  return d;
}

void ExpectInvalid(const absl::StatusOr<Image>& result, const std::string& substring) {
  ASSERT_FALSE(result.ok()) << "expected an error containing: " << substring;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(substring));
}

// Offset of the first SOFn marker's height field in a JPEG from tjCompress2.
size_t SofDimsOffset(const std::vector<uint8_t>& jpeg) {
  for (size_t i = 2; i + 9 < jpeg.size(); ++i) {
    if (jpeg[i] == 0xFF && (jpeg[i + 1] == 0xC0 || jpeg[i + 1] == 0xC2)) return i + 5;
  }
  ADD_FAILURE() << "no SOF marker";
  return 0;
}

std::vector<uint8_t> JpegWithDims(int width, int height) {
  const auto rgb = MakeRgb(16, 16, 1);
  auto jpeg = EncodeJpeg(rgb, 16, 16);
  const size_t off = SofDimsOffset(jpeg);
  jpeg[off] = static_cast<uint8_t>(height >> 8);
  jpeg[off + 1] = static_cast<uint8_t>(height);
  jpeg[off + 2] = static_cast<uint8_t>(width >> 8);
  jpeg[off + 3] = static_cast<uint8_t>(width);
  return jpeg;
}

// A PNG whose IHDR (with a valid CRC) claims width x height, followed by an empty IDAT and IEND.
std::vector<uint8_t> PngWithDims(uint32_t width, uint32_t height) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const auto chunk = [&png](const char* type, std::vector<uint8_t> data) {
    const uint32_t n = static_cast<uint32_t>(data.size());
    for (int s = 24; s >= 0; s -= 8) png.push_back(static_cast<uint8_t>(n >> s));
    std::vector<uint8_t> body(type, type + 4);
    body.insert(body.end(), data.begin(), data.end());
    png.insert(png.end(), body.begin(), body.end());
    const uint32_t crc = testing::Crc32(body);
    for (int s = 24; s >= 0; s -= 8) png.push_back(static_cast<uint8_t>(crc >> s));
  };
  std::vector<uint8_t> ihdr;
  for (uint32_t v : {width, height}) {
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(static_cast<uint8_t>(v >> s));
  }
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, deflate, no filter, no interlace
  chunk("IHDR", ihdr);
  chunk("IDAT", {0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01});
  chunk("IEND", {});
  return png;
}

TEST(DecodeTest, SniffsFormats) {
  const auto rgb = MakeRgb(8, 8, 1);
  EXPECT_EQ(SniffFormat(EncodeJpeg(rgb, 8, 8)), Format::kJpeg);
  EXPECT_EQ(SniffFormat(EncodeRgbPng(rgb, 8, 8)), Format::kPng);
  EXPECT_EQ(SniffFormat(std::vector<uint8_t>{0xFF, 0xD8}), Format::kUnknown);
  EXPECT_EQ(SniffFormat({}), Format::kUnknown);
}

class DecodePngTest : public ::testing::TestWithParam<testing::PngCase> {};

TEST_P(DecodePngTest, RoundTripsExactly) {
  for (auto [w, h] : {std::pair{37, 23}, std::pair{1, 1}, std::pair{64, 3}}) {
    const testing::MadePng png = testing::MakePng(GetParam(), w, h, 7);
    absl::StatusOr<Image> img = Decode(png.bytes, Limits{});
    ASSERT_TRUE(img.ok()) << img.status();
    EXPECT_EQ(img->width, w);
    EXPECT_EQ(img->height, h);
    EXPECT_EQ(img->rgb, png.expected_rgb) << GetParam().name << " " << w << "x" << h;
    // DCT scaling is JPEG-only: a PNG always decodes at full size.
    absl::StatusOr<Image> same = Decode(png.bytes, Limits{}, 1);
    ASSERT_TRUE(same.ok());
    EXPECT_EQ(same->width, w);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DecodePngTest, ::testing::ValuesIn(testing::AllPngCases()),
                         [](const auto& info) { return info.param.name; });

TEST(DecodeTest, JpegRoundTripsClosely) {
  const int w = 61, h = 45;
  const auto rgb = MakeRgb(w, h, 3);
  struct Case {
    int subsamp;
    int quality;
    int flags;
    int max_abs;
    double mean_abs;
  };
  for (const Case& c : {Case{TJSAMP_444, 100, TJFLAG_ACCURATEDCT, 6, 1.0},
                        Case{TJSAMP_420, 90, 0, 120, 14.0}, Case{TJSAMP_422, 95, 0, 100, 10.0},
                        Case{TJSAMP_444, 100, TJFLAG_PROGRESSIVE | TJFLAG_ACCURATEDCT, 6, 1.0}}) {
    const auto jpeg = EncodeJpeg(rgb, w, h, TJPF_RGB, c.subsamp, c.quality, c.flags);
    absl::StatusOr<Image> img = Decode(jpeg, Limits{});
    ASSERT_TRUE(img.ok()) << img.status();
    ASSERT_EQ(img->width, w);
    ASSERT_EQ(img->height, h);
    const DiffStats d = Diff(img->rgb, rgb);
    EXPECT_LE(d.max_abs, c.max_abs) << "subsamp " << c.subsamp;
    EXPECT_LT(d.mean_abs, c.mean_abs) << "subsamp " << c.subsamp;
  }
}

TEST(DecodeTest, GreyJpegReplicatesToRgb) {
  const int w = 30, h = 20;
  std::vector<uint8_t> grey(w * h);
  for (int i = 0; i < w * h; ++i) grey[i] = static_cast<uint8_t>(i * 7);
  const auto jpeg = EncodeJpeg(grey, w, h, TJPF_GRAY, TJSAMP_GRAY, 100);
  absl::StatusOr<Image> img = Decode(jpeg, Limits{});
  ASSERT_TRUE(img.ok()) << img.status();
  std::vector<uint8_t> expected;
  for (uint8_t g : grey) expected.insert(expected.end(), {g, g, g});
  for (int p = 0; p < w * h; ++p) {
    ASSERT_EQ(img->rgb[3 * p], img->rgb[3 * p + 1]);
    ASSERT_EQ(img->rgb[3 * p], img->rgb[3 * p + 2]);
  }
  EXPECT_LE(Diff(img->rgb, expected).max_abs, 3);
}

TEST(DecodeTest, CmykJpegConvertsLikePil) {
  // Constant CMYK blocks survive JPEG nearly exactly, so the conversion rule is visible:
  // samples are Adobe-inverted, R = K' - (255 - C') * K' / 255 with K' = stored K.
  const int w = 16, h = 16;
  std::vector<uint8_t> cmyk(w * h * 4);
  const uint8_t stored[4] = {200, 100, 30, 180};
  for (int p = 0; p < w * h; ++p) std::copy(stored, stored + 4, &cmyk[p * 4]);
  const auto jpeg = EncodeJpeg(cmyk, w, h, TJPF_CMYK, TJSAMP_444, 100);
  absl::StatusOr<Image> img = Decode(jpeg, Limits{});
  ASSERT_TRUE(img.ok()) << img.status();
  for (int c = 0; c < 3; ++c) {
    const double expected = stored[3] - (255.0 - stored[c]) * stored[3] / 255.0;
    EXPECT_NEAR(img->rgb[c], expected, 2.0) << "channel " << c;
  }
}

TEST(DecodeTest, DctScalingPicksSmallestScaleAboveMinShortSide) {
  struct Case {
    int w, h, min_short_side, want_w, want_h;
  };
  // Factors <= 1 in libjpeg-turbo 2.1: 1/8, 1/4, 3/8, 1/2, 5/8, 3/4, 7/8, 1; scaled = ceil.
  const Case cases[] = {
      {800, 600, 0, 800, 600},     {800, 600, 600, 800, 600},   {800, 600, 601, 800, 600},
      {800, 600, 300, 400, 300},   {800, 600, 299, 400, 300},   {800, 600, 301, 500, 375},
      {800, 600, 75, 100, 75},     {800, 600, 1, 100, 75},      {600, 800, 256, 300, 400},
      {1001, 333, 100, 376, 125},  {2000, 1500, 128, 250, 188}, {2000, 1500, 256, 500, 375},
      {1920, 1080, 256, 480, 270}, {1920, 1080, 224, 480, 270}, {1920, 1080, 135, 240, 135},
  };
  for (const Case& c : cases) {
    const auto rgb = MakeRgb(c.w, c.h, 5, /*noise=*/0);
    const auto jpeg = EncodeJpeg(rgb, c.w, c.h, TJPF_RGB, TJSAMP_420, 90, 0);
    absl::StatusOr<Image> img = Decode(jpeg, Limits{}, c.min_short_side);
    ASSERT_TRUE(img.ok()) << img.status();
    EXPECT_EQ(img->width, c.want_w) << c.w << "x" << c.h << " min " << c.min_short_side;
    EXPECT_EQ(img->height, c.want_h) << c.w << "x" << c.h << " min " << c.min_short_side;
    EXPECT_EQ(img->rgb.size(), size_t(img->width) * img->height * 3);
  }
}

TEST(DecodeTest, DctScaledDecodeApproximatesBoxDownscale) {
  const int w = 320, h = 240;
  const auto rgb = MakeRgb(w, h, 9, /*noise=*/0);
  const auto jpeg = EncodeJpeg(rgb, w, h, TJPF_RGB, TJSAMP_444, 100);
  absl::StatusOr<Image> img = Decode(jpeg, Limits{}, 120);  // -> 1/2
  ASSERT_TRUE(img.ok()) << img.status();
  ASSERT_EQ(img->width, 160);
  ASSERT_EQ(img->height, 120);
  std::vector<uint8_t> box(160 * 120 * 3);
  for (int y = 0; y < 120; ++y) {
    for (int x = 0; x < 160; ++x) {
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = 0; dy < 2; ++dy) {
          for (int dx = 0; dx < 2; ++dx) sum += rgb[((2 * y + dy) * w + 2 * x + dx) * 3 + c];
        }
        box[(y * 160 + x) * 3 + c] = static_cast<uint8_t>((sum + 2) / 4);
      }
    }
  }
  EXPECT_LT(Diff(img->rgb, box).mean_abs, 3.0);
}

TEST(DecodeTest, RejectsEmptyInput) { ExpectInvalid(Decode({}, Limits{}), "empty"); }

TEST(DecodeTest, RejectsGarbageNamingAcceptedFormats) {
  const auto garbage = testing::RandomBytes(1000, 3);
  ExpectInvalid(Decode(garbage, Limits{}), "accepted formats: JPEG, PNG");
  const std::string gif = "GIF89a\x01\x00\x01\x00";
  ExpectInvalid(
      Decode(std::span(reinterpret_cast<const uint8_t*>(gif.data()), gif.size()), Limits{}),
      "looks like GIF");
}

TEST(DecodeTest, RejectsTooManyEncodedBytes) {
  const auto png = EncodeRgbPng(MakeRgb(32, 32, 1), 32, 32);
  Limits limits;
  limits.max_encoded_bytes = 100;
  ExpectInvalid(Decode(png, limits), "encoded image is " + std::to_string(png.size()) +
                                         " bytes, over the limit of 100 bytes");
}

TEST(DecodeTest, RejectsTruncatedJpeg) {
  const auto rgb = MakeRgb(64, 48, 2);
  for (int flags : {0, TJFLAG_PROGRESSIVE}) {
    const auto jpeg = EncodeJpeg(rgb, 64, 48, TJPF_RGB, TJSAMP_420, 90, flags);
    for (size_t cut : {size_t{3}, size_t{20}, size_t{100}, size_t{200}, jpeg.size() / 3,
                       jpeg.size() / 2, jpeg.size() - 100}) {
      SCOPED_TRACE(::testing::Message() << "cut at " << cut << " of " << jpeg.size());
      ExpectInvalid(Decode(std::span(jpeg).first(cut), Limits{}),
                    "JPEG data is truncated or corrupt");
    }
  }
}

TEST(DecodeTest, AcceptsJpegsPillowAccepts) {
  const auto rgb = MakeRgb(40, 30, 2);
  const auto jpeg = EncodeJpeg(rgb, 40, 30, TJPF_RGB, TJSAMP_420, 90, 0);
  absl::StatusOr<Image> clean = Decode(jpeg, Limits{});
  ASSERT_TRUE(clean.ok()) << clean.status();
  // Junk before EOI: libjpeg warns "Corrupt JPEG data: 3 extraneous bytes before marker 0xd9"
  // but has decoded everything; Pillow returns the image too.
  auto junk = jpeg;
  junk.insert(junk.end() - 2, {0x12, 0x34, 0x56});
  absl::StatusOr<Image> img = Decode(junk, Limits{});
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->rgb, clean->rgb);
  // Bytes after EOI (appended metadata, a second image) are ignored.
  auto trailing = jpeg;
  trailing.insert(trailing.end(), {0xFF, 0xD8, 0xFF, 0x00, 0x42});
  img = Decode(trailing, Limits{});
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->rgb, clean->rgb);
}

TEST(DecodeTest, RejectsJpegTruncatedInsideAProgressiveHeader) {
  // Data ending inside a later scan's DHT: libjpeg warns about the end of data, then fails
  // hard on the cut table; TurboJPEG reports that as a warning, which must still be an error.
  const auto rgb = MakeRgb(64, 48, 2);
  const auto jpeg = EncodeJpeg(rgb, 64, 48, TJPF_RGB, TJSAMP_420, 90, TJFLAG_PROGRESSIVE);
  size_t dht = 0;
  for (size_t i = 400; i + 1 < jpeg.size(); ++i) {
    if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xC4) {
      dht = i;
      break;
    }
  }
  ASSERT_GT(dht, 0u);
  ExpectInvalid(Decode(std::span(jpeg).first(dht + 3), Limits{}),
                "JPEG data is truncated or corrupt");
}

TEST(DecodeTest, RejectsTruncatedPng) {
  const auto png = EncodeRgbPng(MakeRgb(64, 48, 2), 64, 48);
  // 8: signature only; 20: inside IHDR; 33: IHDR complete; then inside the IDAT stream. (A
  // cut that loses only the last IDAT's CRC and IEND still holds the whole image: spng, like
  // Pillow, decodes it.)
  for (size_t cut :
       {size_t{8}, size_t{20}, size_t{33}, size_t{45}, png.size() / 2, png.size() - 30}) {
    SCOPED_TRACE(::testing::Message() << "cut at " << cut << " of " << png.size());
    ExpectInvalid(Decode(std::span(png).first(cut), Limits{}), "PNG data is truncated or corrupt");
  }
}

TEST(DecodeTest, RejectsPngWithBadCrc) {
  auto png = EncodeRgbPng(MakeRgb(8, 8, 2), 8, 8);
  png[29] ^= 0x01;  // IHDR CRC
  ExpectInvalid(Decode(png, Limits{}), "PNG data is truncated or corrupt");
}

TEST(DecodeTest, RejectsZeroSizedHeaders) {
  ExpectInvalid(Decode(JpegWithDims(16, 0), Limits{}), "JPEG image has invalid dimensions 16x0");
  ExpectInvalid(Decode(JpegWithDims(0, 16), Limits{}), "JPEG image has invalid dimensions 0x16");
  ExpectInvalid(Decode(PngWithDims(0, 10), Limits{}), "PNG image has invalid dimensions 0x10");
  ExpectInvalid(Decode(PngWithDims(10, 0), Limits{}), "PNG image has invalid dimensions 10x0");
}

TEST(DecodeTest, RejectsDecompressionBombsFromTheHeader) {
  // Each header claims gigabytes of pixels in a file of a few hundred bytes; the check happens
  // before any pixel buffer exists (an allocation that size would fail under ASan anyway).
  ExpectInvalid(Decode(PngWithDims(100000, 100000), Limits{}),
                "PNG image is 100000x100000; each side may be at most 32768 pixels");
  ExpectInvalid(Decode(PngWithDims(30000, 30000), Limits{}),
                "PNG image is 30000x30000 = 900000000 pixels, over the limit of 64000000 pixels");
  ExpectInvalid(Decode(PngWithDims(0xFFFFFFFF, 1), Limits{}), "PNG image is 4294967295x1");
  ExpectInvalid(Decode(JpegWithDims(60000, 60000), Limits{}),
                "JPEG image is 60000x60000; each side may be at most 32768 pixels");
  Limits wide;
  wide.max_side = 65535;
  ExpectInvalid(Decode(JpegWithDims(65000, 65000), wide),
                "JPEG image is 65000x65000 = 4225000000 pixels, over the limit of 64000000");
  // DCT scaling does not lift the limit: libjpeg would still buffer full-size coefficients.
  ExpectInvalid(Decode(JpegWithDims(20000, 20000), Limits{}, 256), "20000x20000 = 400000000");
}

TEST(DecodeTest, EnforcesMaxSide) {
  Limits limits;
  limits.max_side = 32;
  const auto rgb = MakeRgb(40, 10, 1);
  ExpectInvalid(Decode(EncodeRgbPng(rgb, 40, 10), limits),
                "PNG image is 40x10; each side may be at most 32 pixels");
  ExpectInvalid(Decode(EncodeJpeg(rgb, 40, 10), limits),
                "JPEG image is 40x10; each side may be at most 32 pixels");
}

// Recomputes every complete chunk's CRC so that mutations reach spng's inflate and unfiltering
// instead of stopping at the CRC check.
void FixPngCrcs(std::vector<uint8_t>& png) {
  size_t pos = 8;
  while (pos + 12 <= png.size()) {
    const size_t len = (size_t{png[pos]} << 24) | (size_t{png[pos + 1]} << 16) |
                       (size_t{png[pos + 2]} << 8) | png[pos + 3];
    if (len > png.size() - pos - 12) break;
    const uint32_t crc = testing::Crc32(std::span(png).subspan(pos + 4, len + 4));
    for (int k = 0; k < 4; ++k) png[pos + 8 + len + k] = static_cast<uint8_t>(crc >> (24 - 8 * k));
    pos += 12 + len;
  }
}

// Random corruption of valid files: every outcome is OK or INVALID_ARGUMENT, never a crash,
// hang or sanitizer report; OK images are well-formed and preprocess cleanly.
TEST(DecodeFuzzTest, RandomMutationsNeverCrash) {
  const auto rgb = MakeRgb(48, 40, 4);
  const std::vector<std::vector<uint8_t>> seeds = {
      EncodeJpeg(rgb, 48, 40, TJPF_RGB, TJSAMP_420, 85, 0),
      EncodeJpeg(rgb, 48, 40, TJPF_RGB, TJSAMP_444, 85, TJFLAG_PROGRESSIVE),
      EncodeRgbPng(rgb, 48, 40),
      testing::MakePng({"palette4", SPNG_COLOR_TYPE_INDEXED, 4, true}, 48, 40, 1).bytes,
      testing::MakePng({"grey16", SPNG_COLOR_TYPE_GRAYSCALE, 16}, 48, 40, 1).bytes,
  };
  Limits limits;
  limits.max_pixels = 1 << 20;  // mutated headers may claim big images; keep the test fast
  std::mt19937 rng(12345);
  ClassifySpec spec;
  spec.resize_size = 40;
  spec.crop_size = 32;
  std::vector<float> out(32 * 32 * 3);
  int ok = 0, invalid = 0;
  for (int iter = 0; iter < 1000; ++iter) {
    std::vector<uint8_t> data = seeds[iter % seeds.size()];
    const int mutations = 1 + static_cast<int>(rng() % 8);
    for (int m = 0; m < mutations; ++m) {
      const size_t pos = rng() % data.size();
      switch (rng() % 5) {
        case 0:
          data[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          data[pos] = static_cast<uint8_t>(rng());
          break;
        case 2:
          data[pos] = (rng() & 1) ? 0xFF : 0x00;
          break;
        case 3:
          if (data.size() > 4) data.resize(std::max<size_t>(pos, 4));
          break;
        case 4:
          data.insert(data.begin() + static_cast<std::ptrdiff_t>(pos), static_cast<uint8_t>(rng()));
          break;
      }
    }
    if (SniffFormat(data) == Format::kPng && (rng() & 1)) FixPngCrcs(data);
    absl::StatusOr<Image> img = Decode(data, limits, (iter % 3 == 0) ? 20 : 0);
    if (img.ok()) {
      ++ok;
      ASSERT_GT(img->width, 0);
      ASSERT_GT(img->height, 0);
      ASSERT_EQ(img->rgb.size(), size_t(img->width) * img->height * 3);
      ASSERT_TRUE(Preprocess(*img, spec, out).ok());
    } else {
      ++invalid;
      ASSERT_EQ(img.status().code(), absl::StatusCode::kInvalidArgument) << img.status();
    }
  }
  RecordProperty("decoded_ok", ok);
  RecordProperty("rejected", invalid);
  EXPECT_GT(ok, 0);
  EXPECT_GT(invalid, 0);
}

}  // namespace
}  // namespace visionserve::preprocess
