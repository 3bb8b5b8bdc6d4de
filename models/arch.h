#pragma once

// Architecture hyper-parameters of the zoo's families, exactly the arguments torchvision 0.14's
// model functions pass to their model classes. A catalog entry (models/catalog.h) carries one of
// these; the family builder (models/builders.h) turns it into a graph.

#include <array>
#include <cstdint>
#include <variant>

namespace visionserve::models {

// torchvision.models.regnet: BlockParams.from_init_params(depth, w_0, w_a, w_m, group_width,
// bottleneck_multiplier, se_ratio) with a 3×3 stride-2 stem of `stem_width` channels.
// se_ratio == 0 builds a RegNetX (no squeeze-excite), otherwise a RegNetY.
struct RegNetParams {
  int depth = 0;
  int w_0 = 0;
  double w_a = 0;
  double w_m = 0;
  int group_width = 0;
  double se_ratio = 0;
  double bottleneck_multiplier = 1.0;
  int stem_width = 32;
};

// torchvision.models.convnext: four stages of CNBlocks with `dims` channels and `depths` blocks.
struct ConvNeXtParams {
  std::array<int64_t, 4> dims{};
  std::array<int, 4> depths{};
};

// torchvision.models.efficientnet (V1, MBConv): _efficientnet_conf(width_mult, depth_mult) and
// the BatchNorm eps the variant's norm_layer uses (1e-5 for B0–B4, 1e-3 for B5–B7).
struct EfficientNetParams {
  double width_mult = 1.0;
  double depth_mult = 1.0;
  float bn_eps = 1e-5f;
};

// torchvision.models.resnet with Bottleneck blocks (ResNet-50/101/152, ResNeXt): blocks per
// layer, groups and width_per_group of the 3×3 convs.
struct ResNetParams {
  std::array<int, 4> layers{};
  int64_t groups = 1;
  int64_t width_per_group = 64;
};

// torchvision.models.mobilenetv2.MobileNetV2(width_mult).
struct MobileNetV2Params {
  double width_mult = 1.0;
};

// torchvision.models.mobilenetv3: _mobilenet_v3_conf("mobilenet_v3_large" or "_small").
struct MobileNetV3Params {
  bool large = true;
  double width_mult = 1.0;
};

// One alternative per family builder; models/builders.h declares one BuildFamily overload per
// alternative, so a new alternative without a builder does not compile.
using ArchParams = std::variant<RegNetParams, ConvNeXtParams, EfficientNetParams, ResNetParams,
                                MobileNetV2Params, MobileNetV3Params>;

}  // namespace visionserve::models
