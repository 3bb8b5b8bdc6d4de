#include "server/detect/isa.h"

#include <algorithm>

namespace visionserve::detect {

Isa ClampIsa(Isa isa) {
  static const Isa best = DetectIsa();
  return std::min(isa, best);
}

}  // namespace visionserve::detect
