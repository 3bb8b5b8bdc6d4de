#include "engine/activation.h"

namespace visionserve::engine {

std::string_view ActivationName(Activation act) {
  switch (act) {
    case Activation::kNone:
      return "none";
    case Activation::kReLU:
      return "relu";
    case Activation::kReLU6:
      return "relu6";
    case Activation::kSiLU:
      return "silu";
    case Activation::kGELU:
      return "gelu";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kHardSwish:
      return "hardswish";
    case Activation::kHardSigmoid:
      return "hardsigmoid";
  }
  return "?";
}

}  // namespace visionserve::engine
