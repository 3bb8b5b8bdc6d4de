// ConvNeXt as torchvision.models.convnext builds it.

#include <string>

#include "absl/strings/str_cat.h"
#include "models/builders.h"

namespace visionserve::models::internal {

namespace {

using engine::Activation;
using engine::Graph;
using engine::ValueId;

constexpr float kLnEps = 1e-6f;

// nn.Linear(in, out) applied over the channels of an NHWC map: a 1×1 Conv2D with bias whose
// weight keeps torch's Linear shape [out, in].
ValueId PointwiseLinear(Graph& g, ValueId x, int64_t out_features, const std::string& name) {
  const int64_t in_features = g.value(x).dims.c;
  const ValueId y = Conv(g, x, ConvSpec{.out_channels = out_features, .kernel = 1}, true, name);
  g.mutable_param(g.node(g.value(y).producer).params[0]).shape = {out_features, in_features};
  return y;
}

// CNBlock: x + layer_scale * (dwconv7×7 → LayerNorm → Linear(C, 4C) → GELU → Linear(4C, C)).
ValueId CNBlock(Graph& g, ValueId x, const std::string& prefix) {
  const int64_t c = g.value(x).dims.c;
  ValueId y = Conv(g, x, ConvSpec{.out_channels = c, .kernel = 7, .groups = c, .padding = 3}, true,
                   prefix + ".block.0");
  y = g.LayerNorm(y, prefix + ".block.2", kLnEps);
  y = PointwiseLinear(g, y, 4 * c, prefix + ".block.3");
  y = g.Act(y, Activation::kGELU);
  y = PointwiseLinear(g, y, c, prefix + ".block.5");
  y = g.ChannelScale(y, prefix + ".layer_scale");
  g.mutable_param(g.node(g.value(y).producer).params[0]).shape = {c, 1, 1};  // torch's shape
  return g.Add(y, x);
}

}  // namespace

absl::StatusOr<Graph> BuildFamily(const ConvNeXtParams& p, const BuildSpec& spec) {
  for (size_t s = 0; s < p.dims.size(); ++s) {
    if (p.dims[s] < 1 || p.depths[s] < 1) {
      return absl::InvalidArgumentError("invalid ConvNeXt settings");
    }
  }
  ValueId x;
  Graph g = NewModelGraph(spec.input_size, &x);
  // Stem: Conv2dNormActivation(3, C0, 4, stride 4, padding 0, LayerNorm2d, bias=True).
  x = Conv(g, x, ConvSpec{.out_channels = p.dims[0], .kernel = 4, .stride = 4, .padding = 0}, true,
           "features.0.0");
  x = g.LayerNorm(x, "features.0.1", kLnEps);
  int feature = 1;
  for (size_t s = 0; s < p.dims.size(); ++s) {
    for (int j = 0; j < p.depths[s]; ++j) {
      x = CNBlock(g, x, absl::StrCat("features.", feature, ".", j));
    }
    ++feature;
    if (s + 1 < p.dims.size()) {
      // Downsampling: LayerNorm2d, Conv2d(C, C', 2, stride 2).
      const std::string ds = absl::StrCat("features.", feature);
      x = g.LayerNorm(x, ds + ".0", kLnEps);
      x = Conv(g, x,
               ConvSpec{.out_channels = p.dims[s + 1], .kernel = 2, .stride = 2, .padding = 0},
               true, ds + ".1");
      ++feature;
    }
  }
  // Head: avgpool, LayerNorm2d, Flatten, Linear.
  x = g.GlobalAvgPool(x);
  x = g.LayerNorm(x, "classifier.0", kLnEps);
  Logits(g, x, spec.num_classes, "classifier.2");
  return g;
}

}  // namespace visionserve::models::internal
