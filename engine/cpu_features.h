#pragma once

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
// CPU quota (v2 cpu.max or v1 cfs_quota_us/cfs_period_us), rounded down, at least 1.
int CpuAllowance();

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
