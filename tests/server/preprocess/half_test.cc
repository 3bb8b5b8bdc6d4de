#include "server/preprocess/half.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/preprocess/preprocess.h"

namespace visionserve::preprocess {
namespace {

using engine::Isa;

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  return b;
}

bool IsFiniteHalf(uint16_t h) { return (h & 0x7c00u) != 0x7c00u; }

// Every finite half, little-endian, in order.
std::string AllFiniteHalves() {
  std::string bytes;
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    if (!IsFiniteHalf(static_cast<uint16_t>(h))) continue;
    bytes.push_back(static_cast<char>(h & 0xff));
    bytes.push_back(static_cast<char>(h >> 8));
  }
  return bytes;
}

TEST(HalfTest, KnownValuesConvertExactly) {
  EXPECT_EQ(HalfBitsToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfBitsToFloat(0xc000), -2.0f);
  EXPECT_EQ(HalfBitsToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfBitsToFloat(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(HalfBitsToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(HalfBitsToFloat(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(Bits(HalfBitsToFloat(0x8000)), 0x80000000u);  // -0
  EXPECT_TRUE(std::isinf(HalfBitsToFloat(0xfc00)));
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(0x7e00)));
}

TEST(HalfTest, EveryFiniteHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    if (!IsFiniteHalf(static_cast<uint16_t>(h))) continue;
    ASSERT_EQ(FloatToHalfBits(HalfBitsToFloat(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(HalfTest, FloatToHalfRoundsToNearestEven) {
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie: stays even
  EXPECT_EQ(FloatToHalfBits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie: up to even
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(1.1f, -11)), 0x3c01);      // above the tie
  EXPECT_EQ(FloatToHalfBits(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(65520.0f), 0x7c00);  // rounds past the largest half
  EXPECT_EQ(FloatToHalfBits(-1e9f), 0xfc00);
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -25)), 0x0000);     // tie with zero: even
  EXPECT_EQ(FloatToHalfBits(std::ldexp(3.0f, -25)), 0x0002);     // tie: up to even
  EXPECT_EQ(FloatToHalfBits(std::ldexp(2047.0f, -25)), 0x0400);  // into the normals
  EXPECT_EQ(FloatToHalfBits(0.1f), 0x2e66);
  EXPECT_EQ(FloatToHalfBits(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(FloatToHalfBits(std::nanf("")))));
}

class HalfToFloatIsaTest : public ::testing::TestWithParam<Isa> {};

TEST_P(HalfToFloatIsaTest, MatchesTheReferenceBitForBitAtAnyLengthAndAlignment) {
  if (GetParam() > engine::DetectIsa()) GTEST_SKIP() << "CPU lacks this ISA";
  const std::string all = AllFiniteHalves();
  const size_t n_all = all.size() / 2;
  std::vector<float> want(n_all), got(n_all);
  ASSERT_EQ(HalfToFloatRef(reinterpret_cast<const uint8_t*>(all.data()), n_all, want.data()), -1);
  ASSERT_EQ(
      HalfToFloat(GetParam(), reinterpret_cast<const uint8_t*>(all.data()), n_all, got.data()), -1);
  for (size_t i = 0; i < n_all; ++i) ASSERT_EQ(Bits(got[i]), Bits(want[i])) << i;
  // Short and odd lengths from an odd byte address (protobuf's bytes may start anywhere).
  std::string shifted(1, ' ');
  shifted += all.substr(0, 2 * 200);
  for (size_t n = 0; n <= 40; ++n) {
    std::vector<float> a(n + 1, -7.0f), b(n + 1, -7.0f);
    const auto* src = reinterpret_cast<const uint8_t*>(shifted.data() + 1) + 2 * n;
    EXPECT_EQ(HalfToFloatRef(src, n, a.data()), -1);
    EXPECT_EQ(HalfToFloat(GetParam(), src, n, b.data()), -1);
    for (size_t i = 0; i <= n; ++i) EXPECT_EQ(Bits(a[i]), Bits(b[i])) << n << " " << i;
  }
}

TEST_P(HalfToFloatIsaTest, NamesTheFirstInfOrNaN) {
  if (GetParam() > engine::DetectIsa()) GTEST_SKIP() << "CPU lacks this ISA";
  for (const size_t n : {1, 15, 16, 17, 33, 100}) {
    for (const size_t at : {size_t{0}, n / 2, n - 1}) {
      for (const uint16_t bad : {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e01}}) {
        std::string bytes(2 * n, '\0');
        for (size_t i = 0; i < n; ++i) bytes[2 * i + 1] = 0x3c;  // 1.0
        bytes[2 * at] = static_cast<char>(bad & 0xff);
        bytes[2 * at + 1] = static_cast<char>(bad >> 8);
        if (at + 1 < n) bytes[2 * n - 1] = 0x7c;  // a later Inf must not be the one named
        std::vector<float> out(n);
        EXPECT_EQ(
            HalfToFloat(GetParam(), reinterpret_cast<const uint8_t*>(bytes.data()), n, out.data()),
            static_cast<int64_t>(at))
            << n << " " << at;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, HalfToFloatIsaTest,
                         ::testing::Values(Isa::kPortable, Isa::kAvx2, Isa::kAvx512),
                         [](const auto& info) { return std::string(engine::IsaName(info.param)); });

TEST(CheckPreprocessedHalfTest, ConvertsAValidTensor) {
  const int size = 5;
  std::vector<float> values(size * size * 3);
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(0.37f * i) * 2.5f;
  const std::string bytes = FloatsToHalfBytes(values);
  const std::vector<int64_t> shape = {size, size, 3};
  std::vector<float> out(values.size());
  ASSERT_TRUE(
      CheckPreprocessedHalf(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
          shape, size, out)
          .ok());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(out[i], HalfBitsToFloat(FloatToHalfBits(values[i])));
    EXPECT_NEAR(out[i], values[i], 2.5f / 1024);  // 11 significant bits
  }
}

TEST(CheckPreprocessedHalfTest, RejectsBadTensorsWithSpecificMessages) {
  const int size = 4;
  std::vector<float> out(size * size * 3);
  const std::vector<int64_t> shape = {size, size, 3};
  auto check = [&](const std::string& bytes, const std::vector<int64_t>& s) {
    return CheckPreprocessedHalf(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), s,
        size, out);
  };
  std::string bytes = FloatsToHalfBytes(std::vector<float>(out.size(), 0.5f));
  EXPECT_TRUE(check(bytes, shape).ok());

  absl::Status s = check(bytes.substr(1), shape);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not a multiple of 2"), std::string::npos) << s;
  s = check(bytes.substr(2), shape);
  EXPECT_NE(s.message().find("needs 48 values, got 47"), std::string::npos) << s;
  s = check(bytes, {size, size, 1});
  EXPECT_NE(s.message().find("expected [4, 4, 3]"), std::string::npos) << s;

  bytes[2 * 29] = 0x00;
  bytes[2 * 29 + 1] = static_cast<char>(0xfc);  // -Inf at h=2, w=1, c=2
  s = check(bytes, shape);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("element 29 (h=2, w=1, c=2) is -Inf"), std::string::npos) << s;
}

}  // namespace
}  // namespace visionserve::preprocess
