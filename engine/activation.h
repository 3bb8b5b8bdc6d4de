#pragma once

#include <cstdint>
#include <string_view>

namespace visionserve::engine {

// Element-wise activations the engine fuses into op epilogues.
enum class Activation : uint8_t {
  kNone,
  kReLU,
  kReLU6,
  kSiLU,
  kGELU,  // exact (erf) GELU, as torch.nn.GELU()
  kSigmoid,
  kHardSwish,
  kHardSigmoid,  // torch: relu6(x + 3) / 6
};

std::string_view ActivationName(Activation act);

}  // namespace visionserve::engine
