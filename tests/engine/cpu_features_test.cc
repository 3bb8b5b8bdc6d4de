#include "engine/cpu_features.h"

#include <cstdlib>

#include "gtest/gtest.h"

namespace visionserve::engine {
namespace {

TEST(CpuFeaturesTest, ParsesIsaNamesCaseInsensitively) {
  EXPECT_EQ(*ParseIsa("AVX512"), Isa::kAvx512);
  EXPECT_EQ(*ParseIsa("avx2"), Isa::kAvx2);
  EXPECT_EQ(*ParseIsa("portable"), Isa::kPortable);
  auto bad = ParseIsa("sse9");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("sse9"), std::string::npos);
}

TEST(CpuFeaturesTest, EnvironmentCanOnlyLowerTheIsa) {
  setenv("VISIONSERVE_ISA", "portable", 1);
  EXPECT_EQ(DefaultIsa(), Isa::kPortable);
  setenv("VISIONSERVE_ISA", "avx512", 1);
  EXPECT_EQ(DefaultIsa(), DetectIsa());  // clamped to what the CPU has
  setenv("VISIONSERVE_ISA", "nonsense", 1);
  EXPECT_EQ(DefaultIsa(), DetectIsa());
  unsetenv("VISIONSERVE_ISA");
  EXPECT_EQ(DefaultIsa(), DetectIsa());
}

TEST(CpuFeaturesTest, CpuAllowanceIsPositiveAndWithinOnlineCpus) {
  const int n = CpuAllowance();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, 4096);
}

}  // namespace
}  // namespace visionserve::engine
