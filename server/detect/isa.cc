#include "server/detect/isa.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"

namespace visionserve::detect {

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
  static const Isa isa = [] {
    Isa best = DetectIsa();
    if (const char* env = std::getenv("VISIONSERVE_ISA"); env != nullptr) {
      const std::string v = absl::AsciiStrToLower(env);
      if (v == "portable") return Isa::kPortable;
      if (v == "avx2") return std::min(Isa::kAvx2, best);
      if (v == "avx512") return std::min(Isa::kAvx512, best);
    }
    return best;
  }();
  return isa;
}

Isa ClampIsa(Isa isa) {
  static const Isa best = DetectIsa();
  return std::min(isa, best);
}

}  // namespace visionserve::detect
