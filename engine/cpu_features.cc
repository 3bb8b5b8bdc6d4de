#include "engine/cpu_features.h"

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace visionserve::engine {

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return "portable";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

absl::StatusOr<Isa> ParseIsa(std::string_view name) {
  std::string n = absl::AsciiStrToLower(std::string(name));
  if (n == "portable") return Isa::kPortable;
  if (n == "avx2") return Isa::kAvx2;
  if (n == "avx512") return Isa::kAvx512;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ISA '", std::string(name), "' (expected portable, avx2 or avx512)"));
}

Isa DetectIsa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kPortable;
}

Isa DefaultIsa() {
  Isa best = DetectIsa();
  if (const char* env = std::getenv("VISIONSERVE_ISA"); env != nullptr && *env != '\0') {
    if (auto isa = ParseIsa(env); isa.ok()) return std::min(*isa, best);
  }
  return best;
}

namespace {

// Reads the first line of a file, or "" when it cannot be read.
std::string ReadLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (f) std::getline(f, line);
  return line;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream text;
  if (f) text << f.rdbuf();
  return text.str();
}

// Never throws (permission errors read as "not there").
bool IsDirectory(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_directory(path, error);
}

// floor(quota / period), at least 1; 0 for no quota (quota <= 0 or a bad period).
int QuotaCpus(int64_t quota, int64_t period) {
  if (quota <= 0 || period <= 0) return 0;
  return static_cast<int>(std::clamp<int64_t>(quota / period, 1, 1 << 20));
}

// Quota from a v2 cpu.max line: "max 100000" or "200000 100000".
int CpuMaxCpus(const std::string& line) {
  std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
  int64_t quota = 0, period = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &quota) ||
      !absl::SimpleAtoi(parts[1], &period)) {
    return 0;  // "max" or malformed
  }
  return QuotaCpus(quota, period);
}

// Quota from a v1 cpu controller folder: cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us.
int CfsCpus(const std::string& dir) {
  int64_t quota = 0, period = 0;
  if (!absl::SimpleAtoi(ReadLine(dir + "/cpu.cfs_quota_us"), &quota) ||
      !absl::SimpleAtoi(ReadLine(dir + "/cpu.cfs_period_us"), &period)) {
    return 0;
  }
  return QuotaCpus(quota, period);
}

// The tightest quota (0: none) over `mount`/`cgroup` and its ancestors up to `mount` itself,
// with `read` giving the quota of one folder. Folders that do not exist are skipped: without a
// cgroup namespace a container sees its full cgroup path in /proc/self/cgroup while its own
// cgroup is mounted at the root.
template <typename ReadQuota>
int TightestQuota(const std::string& mount, absl::string_view cgroup, ReadQuota read) {
  int tightest = 0;
  std::string path(absl::StripSuffix(cgroup, "/"));
  while (true) {
    const std::string dir = mount + path;
    if (int cpus = IsDirectory(dir) ? read(dir) : 0; cpus > 0) {
      tightest = tightest == 0 ? cpus : std::min(tightest, cpus);
    }
    if (path.empty()) break;
    path.resize(path.rfind('/'));
  }
  return tightest;
}

}  // namespace

int CpuAllowanceFrom(int affinity_cpus, const std::string& cgroup_root,
                     std::string_view proc_self_cgroup) {
  int quota = 0;
  auto tighten = [&](int cpus) {
    if (cpus > 0) quota = quota == 0 ? cpus : std::min(quota, cpus);
  };
  // Lines are "hierarchy-id:controllers:path"; v2 is "0::path", v1 lists its controllers.
  const absl::string_view text(proc_self_cgroup.data(), proc_self_cgroup.size());
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3 || !absl::StartsWith(f[2], "/")) continue;
    if (f[0] == "0" && f[1].empty()) {
      tighten(TightestQuota(cgroup_root, f[2], [](const std::string& dir) {
        return CpuMaxCpus(ReadLine(dir + "/cpu.max"));
      }));
      continue;
    }
    std::vector<absl::string_view> controllers = absl::StrSplit(f[1], ',');
    if (std::find(controllers.begin(), controllers.end(), "cpu") == controllers.end()) continue;
    // The controller's mount: cpu/ on its own, or the joint cpu,cpuacct/ (cpu/ is often a link).
    for (const char* name : {"/cpu", "/cpu,cpuacct", "/cpuacct,cpu"}) {
      const std::string mount = cgroup_root + name;
      if (!IsDirectory(mount)) continue;
      tighten(TightestQuota(mount, f[2], CfsCpus));
      break;
    }
  }
  const int cpus = std::max(affinity_cpus, 1);
  return quota > 0 ? std::min(cpus, quota) : cpus;
}

int CpuAllowance() {
  int cpus = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
  return CpuAllowanceFrom(cpus, "/sys/fs/cgroup", ReadAll("/proc/self/cgroup"));
}

void FlushDenormalsOnThisThread() {
#if defined(__x86_64__) || defined(__i386__)
  const unsigned csr = _mm_getcsr();
  if ((csr & 0x8040) != 0x8040) _mm_setcsr(csr | 0x8040);  // FTZ (bit 15) | DAZ (bit 6)
#endif
}

DenormalModeGuard::DenormalModeGuard() {
#if defined(__x86_64__) || defined(__i386__)
  saved_ = _mm_getcsr();
  if ((saved_ & 0x8040) != 0x8040) _mm_setcsr(saved_ | 0x8040);
#endif
}

DenormalModeGuard::~DenormalModeGuard() {
#if defined(__x86_64__) || defined(__i386__)
  if (_mm_getcsr() != saved_) _mm_setcsr(saved_);
#endif
}

}  // namespace visionserve::engine
