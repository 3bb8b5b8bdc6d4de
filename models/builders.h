#pragma once

// Private to models/: the family builders and the layer helpers they share. Each helper names its
// params exactly as the torchvision module it mirrors, so a builder reads like the torchvision
// model definition it reproduces.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "engine/activation.h"
#include "engine/graph.h"
#include "models/arch.h"

namespace visionserve::models::internal {

// What every family builder needs besides its hyper-parameters (already validated by BuildModel).
struct BuildSpec {
  int input_size = 224;
  int64_t num_classes = 1000;
};

// The family builders: one overload per ArchParams alternative (BuildModel dispatches with
// std::visit, so a missing overload is a compile error). Each returns a graph with the contract
// documented in models/zoo.h, params unfilled.
absl::StatusOr<engine::Graph> BuildFamily(const RegNetParams& p, const BuildSpec& spec);
absl::StatusOr<engine::Graph> BuildFamily(const ConvNeXtParams& p, const BuildSpec& spec);
absl::StatusOr<engine::Graph> BuildFamily(const EfficientNetParams& p, const BuildSpec& spec);
absl::StatusOr<engine::Graph> BuildFamily(const ResNetParams& p, const BuildSpec& spec);
absl::StatusOr<engine::Graph> BuildFamily(const MobileNetV2Params& p, const BuildSpec& spec);
absl::StatusOr<engine::Graph> BuildFamily(const MobileNetV3Params& p, const BuildSpec& spec);

// A 2-D convolution as torch.nn.Conv2d(in, out_channels, kernel, stride, padding, dilation,
// groups). padding < 0 means torchvision's Conv2dNormActivation default (kernel-1)/2*dilation.
struct ConvSpec {
  int64_t out_channels = 0;
  int kernel = 1;
  int stride = 1;
  int64_t groups = 1;
  int dilation = 1;
  int padding = -1;
};

// A graph with the zoo's input value: "input", {size, size, 3}.
engine::Graph NewModelGraph(int input_size, engine::ValueId* input);

// nn.Conv2d named `name` ("<name>.weight" [, "<name>.bias"]).
engine::ValueId Conv(engine::Graph& g, engine::ValueId x, const ConvSpec& spec, bool bias,
                     const std::string& name);

// torchvision.ops.Conv2dNormActivation with BatchNorm2d(eps): "<prefix>.0" conv without bias,
// "<prefix>.1" batch norm, then `act` unless kNone.
engine::ValueId ConvBnAct(engine::Graph& g, engine::ValueId x, const ConvSpec& spec,
                          engine::Activation act, float bn_eps, const std::string& prefix);

// torchvision.ops.SqueezeExcitation(C, squeeze_channels, activation, scale_activation) named
// "<prefix>.fc1.*", "<prefix>.fc2.*".
engine::ValueId SqueezeExcite(engine::Graph& g, engine::ValueId x, int64_t squeeze_channels,
                              engine::Activation inner, engine::Activation gate,
                              const std::string& prefix);

// The final nn.Linear(K, num_classes) with params "<prefix>.weight"/"<prefix>.bias" whose output
// value is named "logits"; marks it as the graph output.
engine::ValueId Logits(engine::Graph& g, engine::ValueId x, int64_t num_classes,
                       const std::string& prefix);

// torchvision.models._utils._make_divisible: nearest multiple of `divisor` (at least min_value,
// default divisor), bumped up one step if rounding lost more than 10%.
int64_t MakeDivisible(double v, int64_t divisor, int64_t min_value = 0);

// Python's round() for doubles (ties to even), as torchvision's int(round(x)).
int64_t PyRound(double x);

}  // namespace visionserve::models::internal
