#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace visionserve::engine {

// Instruction-set levels with their own kernel sets, best last.
enum class Isa : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

std::string_view IsaName(Isa isa);
absl::StatusOr<Isa> ParseIsa(std::string_view name);

// The best level this CPU supports (AVX2 needs AVX2+FMA; AVX-512 needs F, BW, DQ, VL).
Isa DetectIsa();

// DetectIsa(), lowered by the environment variable VISIONSERVE_ISA (portable|avx2|avx512) if set.
// A request above what the CPU supports is clamped to what it supports.
Isa DefaultIsa();

// The number of CPUs this process may use: its affinity mask, further limited by a cgroup
// CPU quota (v2 cpu.max or v1 cpu.cfs_quota_us / cpu.cfs_period_us) set on the process's cgroup
// or any ancestor, rounded down, at least 1. Callers let a flag override it (visionserve
// --threads).
int CpuAllowance();

// CpuAllowance() from explicit inputs, for tests: `affinity_cpus` CPUs in the affinity mask, a
// cgroup filesystem mounted at `cgroup_root` (normally /sys/fs/cgroup: v2 files at the top, v1
// controllers in cpu/ or cpu,cpuacct/) and `proc_self_cgroup`, the text of /proc/self/cgroup.
// The quota is read on the process's cgroup and every ancestor that exists below the root (a
// container usually sees its own cgroup as the root); the tightest wins. Missing, unreadable
// or malformed files, "max" and -1 mean no quota.
int CpuAllowanceFrom(int affinity_cpus, const std::string& cgroup_root,
                     std::string_view proc_self_cgroup);

// Sets flush-to-zero and denormals-are-zero for the calling thread (no-op without SSE).
void FlushDenormalsOnThisThread();

// Sets FTZ/DAZ on this thread for its lifetime and restores the previous mode afterwards.
class DenormalModeGuard {
 public:
  DenormalModeGuard();
  ~DenormalModeGuard();
  DenormalModeGuard(const DenormalModeGuard&) = delete;
  DenormalModeGuard& operator=(const DenormalModeGuard&) = delete;

 private:
  unsigned saved_ = 0;
};

}  // namespace visionserve::engine
