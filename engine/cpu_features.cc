#include "engine/cpu_features.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

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

// Reads the whole first line of a file, or "" when it cannot be read.
std::string ReadLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (f) std::getline(f, line);
  return line;
}

// CPUs allowed by a cgroup quota, or 0 when there is none.
int CgroupQuotaCpus() {
  // cgroup v2: "max 100000" or "200000 100000".
  std::string v2 = ReadLine("/sys/fs/cgroup/cpu.max");
  if (!v2.empty()) {
    std::vector<std::string> parts = absl::StrSplit(v2, ' ', absl::SkipEmpty());
    int64_t quota = 0, period = 0;
    if (parts.size() == 2 && parts[0] != "max" && absl::SimpleAtoi(parts[0], &quota) &&
        absl::SimpleAtoi(parts[1], &period) && quota > 0 && period > 0) {
      return static_cast<int>(std::max<int64_t>(1, quota / period));
    }
    return 0;
  }
  int64_t quota = 0, period = 0;
  if (absl::SimpleAtoi(ReadLine("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), &quota) &&
      absl::SimpleAtoi(ReadLine("/sys/fs/cgroup/cpu/cpu.cfs_period_us"), &period) && quota > 0 &&
      period > 0) {
    return static_cast<int>(std::max<int64_t>(1, quota / period));
  }
  return 0;
}

}  // namespace

int CpuAllowance() {
  int cpus = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = 1;
  if (int quota = CgroupQuotaCpus(); quota > 0) cpus = std::min(cpus, quota);
  return std::max(cpus, 1);
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
