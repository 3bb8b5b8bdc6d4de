// EfficientNet B0–B7 as torchvision.models.efficientnet builds them (MBConv, SiLU).

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "models/builders.h"

namespace visionserve::models::internal {

namespace {

using engine::Activation;
using engine::Graph;
using engine::ValueId;

// One row of torchvision's inverted_residual_setting for efficientnet_b* (before scaling):
// MBConvConfig(expand_ratio, kernel, stride, input_channels, out_channels, num_layers).
struct MBConvRow {
  double expand_ratio;
  int kernel;
  int stride;
  int64_t input_channels;
  int64_t out_channels;
  int num_layers;
};

constexpr MBConvRow kB0Setting[] = {
    {1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},   {6, 5, 2, 24, 40, 2},   {6, 3, 2, 40, 80, 3},
    {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1},
};

// MBConvConfig.adjust_channels.
int64_t AdjustChannels(double channels, double width_mult) {
  return MakeDivisible(channels * width_mult, 8);
}

// MBConv: [expand 1×1] → depthwise k×k (stride) → SE → project 1×1 [+ input].
ValueId MBConv(Graph& g, ValueId x, const MBConvRow& cnf, int64_t in, int64_t out, int stride,
               float eps, const std::string& prefix) {
  const int64_t expanded = AdjustChannels(static_cast<double>(in), cnf.expand_ratio);
  int index = 0;
  auto next = [&] { return absl::StrCat(prefix, ".block.", index++); };
  ValueId y = x;
  if (expanded != in) {
    y = ConvBnAct(g, y, ConvSpec{.out_channels = expanded, .kernel = 1}, Activation::kSiLU, eps,
                  next());
  }
  y = ConvBnAct(
      g, y,
      ConvSpec{
          .out_channels = expanded, .kernel = cnf.kernel, .stride = stride, .groups = expanded},
      Activation::kSiLU, eps, next());
  const int64_t squeeze = std::max<int64_t>(1, in / 4);
  y = SqueezeExcite(g, y, squeeze, Activation::kSiLU, Activation::kSigmoid, next());
  y = ConvBnAct(g, y, ConvSpec{.out_channels = out, .kernel = 1}, Activation::kNone, eps, next());
  if (stride == 1 && in == out) y = g.Add(y, x);
  return y;
}

}  // namespace

absl::StatusOr<Graph> BuildFamily(const EfficientNetParams& p, const BuildSpec& spec) {
  if (p.width_mult <= 0 || p.depth_mult <= 0 || p.bn_eps <= 0) {
    return absl::InvalidArgumentError("invalid EfficientNet settings");
  }
  const float eps = p.bn_eps;
  ValueId x;
  Graph g = NewModelGraph(spec.input_size, &x);
  const int64_t stem =
      AdjustChannels(static_cast<double>(kB0Setting[0].input_channels), p.width_mult);
  x = ConvBnAct(g, x, ConvSpec{.out_channels = stem, .kernel = 3, .stride = 2}, Activation::kSiLU,
                eps, "features.0");
  int feature = 1;
  int64_t last_out = stem;
  for (const MBConvRow& row : kB0Setting) {
    const int64_t in = AdjustChannels(static_cast<double>(row.input_channels), p.width_mult);
    const int64_t out = AdjustChannels(static_cast<double>(row.out_channels), p.width_mult);
    const int layers = static_cast<int>(std::ceil(row.num_layers * p.depth_mult));
    for (int j = 0; j < layers; ++j) {
      x = MBConv(g, x, row, j == 0 ? in : out, out, j == 0 ? row.stride : 1, eps,
                 absl::StrCat("features.", feature, ".", j));
    }
    last_out = out;
    ++feature;
  }
  x = ConvBnAct(g, x, ConvSpec{.out_channels = 4 * last_out, .kernel = 1}, Activation::kSiLU, eps,
                absl::StrCat("features.", feature));
  x = g.GlobalAvgPool(x);
  Logits(g, x, spec.num_classes, "classifier.1");  // classifier.0 is Dropout
  return g;
}

}  // namespace visionserve::models::internal
