// ResNet with Bottleneck blocks (ResNet V1.5: stride on the 3×3) as torchvision.models.resnet.

#include <string>

#include "absl/strings/str_cat.h"
#include "models/builders.h"

namespace visionserve::models::internal {

namespace {

using engine::Activation;
using engine::Graph;
using engine::ValueId;

constexpr float kEps = 1e-5f;
constexpr int64_t kExpansion = 4;

ValueId ConvBn(Graph& g, ValueId x, const ConvSpec& spec, const std::string& conv,
               const std::string& bn) {
  return g.BatchNorm(Conv(g, x, spec, /*bias=*/false, conv), bn, kEps);
}

// Bottleneck: relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))) + downsample(x)).
ValueId Bottleneck(Graph& g, ValueId x, int64_t planes, int stride, const ResNetParams& p,
                   const std::string& prefix) {
  const int64_t in = g.value(x).dims.c;
  const int64_t width = static_cast<int64_t>(static_cast<double>(planes) *
                                             (static_cast<double>(p.width_per_group) / 64.0)) *
                        p.groups;
  const int64_t out = planes * kExpansion;
  ValueId y = ConvBn(g, x, ConvSpec{.out_channels = width, .kernel = 1}, prefix + ".conv1",
                     prefix + ".bn1");
  y = g.Act(y, Activation::kReLU);
  y = ConvBn(g, y,
             ConvSpec{.out_channels = width, .kernel = 3, .stride = stride, .groups = p.groups},
             prefix + ".conv2", prefix + ".bn2");
  y = g.Act(y, Activation::kReLU);
  y = ConvBn(g, y, ConvSpec{.out_channels = out, .kernel = 1}, prefix + ".conv3", prefix + ".bn3");
  ValueId identity = x;
  if (stride != 1 || in != out) {
    identity = ConvBn(g, x, ConvSpec{.out_channels = out, .kernel = 1, .stride = stride},
                      prefix + ".downsample.0", prefix + ".downsample.1");
  }
  return g.Add(y, identity, Activation::kReLU);
}

}  // namespace

absl::StatusOr<Graph> BuildFamily(const ResNetParams& p, const BuildSpec& spec) {
  if (p.groups < 1 || p.width_per_group < 1) {
    return absl::InvalidArgumentError("invalid ResNet settings");
  }
  for (int n : p.layers) {
    if (n < 1) return absl::InvalidArgumentError("invalid ResNet settings");
  }
  ValueId x;
  Graph g = NewModelGraph(spec.input_size, &x);
  x = ConvBn(g, x, ConvSpec{.out_channels = 64, .kernel = 7, .stride = 2, .padding = 3}, "conv1",
             "bn1");
  x = g.Act(x, Activation::kReLU);
  x = g.MaxPool(x, engine::MaxPoolAttrs{});  // 3×3, stride 2, padding 1
  for (int layer = 0; layer < 4; ++layer) {
    const int64_t planes = int64_t{64} << layer;
    for (int j = 0; j < p.layers[layer]; ++j) {
      const int stride = (layer > 0 && j == 0) ? 2 : 1;
      x = Bottleneck(g, x, planes, stride, p, absl::StrCat("layer", layer + 1, ".", j));
    }
  }
  x = g.GlobalAvgPool(x);
  Logits(g, x, spec.num_classes, "fc");
  return g;
}

}  // namespace visionserve::models::internal
