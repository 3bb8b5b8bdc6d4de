#include "engine/cpu_features.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

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
  EXPECT_LE(n, sysconf(_SC_NPROCESSORS_ONLN));
}

// A fake cgroup filesystem in a fresh temporary folder.
class CpuAllowanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Named by test and process: other builds may run the same test at the same time.
    root_ =
        std::filesystem::path(::testing::TempDir()) /
        (std::string("cgroup_") + ::testing::UnitTest::GetInstance()->current_test_info()->name() +
         "_" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // Writes `text` to root/relative, creating its folders.
  void Write(const std::string& relative, const std::string& text) {
    const std::filesystem::path p = root_ / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text << "\n";
  }
  int Allowance(int affinity, const std::string& proc_self_cgroup) {
    return CpuAllowanceFrom(affinity, root_.string(), proc_self_cgroup);
  }

  std::filesystem::path root_;
};

constexpr char kV2Root[] = "0::/\n";
constexpr char kV1Root[] = "2:cpuacct:/\n1:cpu:/\n0::/\n";

TEST_F(CpuAllowanceTest, NoCgroupFilesLeaveTheAffinityMask) {
  EXPECT_EQ(Allowance(6, kV2Root), 6);
  EXPECT_EQ(Allowance(6, kV1Root), 6);
  EXPECT_EQ(Allowance(6, ""), 6);
}

TEST_F(CpuAllowanceTest, V2QuotaIsRoundedDown) {
  Write("cpu.max", "250000 100000");
  EXPECT_EQ(Allowance(8, kV2Root), 2);
}

TEST_F(CpuAllowanceTest, V2MaxMeansNoQuota) {
  Write("cpu.max", "max 100000");
  EXPECT_EQ(Allowance(8, kV2Root), 8);
}

TEST_F(CpuAllowanceTest, QuotaBelowOnePeriodGivesOneCpu) {
  Write("cpu.max", "50000 100000");
  EXPECT_EQ(Allowance(8, kV2Root), 1);
}

TEST_F(CpuAllowanceTest, AffinityMaskBelowTheQuotaWins) {
  Write("cpu.max", "800000 100000");
  EXPECT_EQ(Allowance(3, kV2Root), 3);
}

TEST_F(CpuAllowanceTest, NonPositiveAffinityCountsAsOneCpu) { EXPECT_EQ(Allowance(0, kV2Root), 1); }

TEST_F(CpuAllowanceTest, V2TightestQuotaOnTheCgroupPathWins) {
  // A Kubernetes-like hierarchy without a cgroup namespace: the pod carries the quota, the
  // container inherits it.
  Write("kubepods/pod1/cpu.max", "300000 100000");
  Write("kubepods/pod1/ctr/cpu.max", "max 100000");
  EXPECT_EQ(Allowance(16, "0::/kubepods/pod1/ctr\n"), 3);
  Write("kubepods/pod1/ctr/cpu.max", "200000 100000");
  EXPECT_EQ(Allowance(16, "0::/kubepods/pod1/ctr\n"), 2);
}

TEST_F(CpuAllowanceTest, V2ContainerSeesItsOwnCgroupAtTheRoot) {
  // Inside a container the cgroup path in /proc/self/cgroup may not exist under the mount.
  Write("cpu.max", "100000 100000");
  EXPECT_EQ(Allowance(4, "0::/system.slice/libpod-abc.scope\n"), 1);
}

TEST_F(CpuAllowanceTest, V1CfsQuotaIsRoundedDown) {
  Write("cpu/cpu.cfs_quota_us", "150000");
  Write("cpu/cpu.cfs_period_us", "100000");
  EXPECT_EQ(Allowance(4, kV1Root), 1);
  Write("cpu/cpu.cfs_quota_us", "350000");
  EXPECT_EQ(Allowance(4, kV1Root), 3);
}

TEST_F(CpuAllowanceTest, V1MinusOneMeansNoQuota) {
  Write("cpu/cpu.cfs_quota_us", "-1");
  Write("cpu/cpu.cfs_period_us", "100000");
  EXPECT_EQ(Allowance(4, kV1Root), 4);
}

TEST_F(CpuAllowanceTest, V1JointCpuCpuacctMountAndNestedCgroup) {
  Write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000");
  Write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000");
  Write("cpu,cpuacct/cpu.cfs_quota_us", "-1");
  Write("cpu,cpuacct/cpu.cfs_period_us", "100000");
  EXPECT_EQ(Allowance(8, "4:cpu,cpuacct:/docker/abc\n0::/\n"), 2);
  // Only the cpu controller's line counts.
  EXPECT_EQ(Allowance(8, "4:memory:/docker/abc\n"), 8);
}

TEST_F(CpuAllowanceTest, V1QuotaWithoutPeriodIsIgnored) {
  Write("cpu/cpu.cfs_quota_us", "100000");
  EXPECT_EQ(Allowance(4, kV1Root), 4);
}

TEST_F(CpuAllowanceTest, MalformedFilesMeanNoQuota) {
  Write("cpu.max", "lots 100000");
  EXPECT_EQ(Allowance(4, kV2Root), 4);
  Write("cpu.max", "100000 0");
  EXPECT_EQ(Allowance(4, kV2Root), 4);
  Write("cpu.max", "");
  EXPECT_EQ(Allowance(4, kV2Root), 4);
  EXPECT_EQ(Allowance(4, "garbage\n0:x\n"), 4);
}

}  // namespace
}  // namespace visionserve::engine
