// MobileNetV2 and MobileNetV3 (large, small) as torchvision.models.mobilenetv2/v3 build them.

#include <algorithm>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "models/builders.h"

namespace visionserve::models::internal {

namespace {

using engine::Activation;
using engine::Graph;
using engine::ValueId;

// ---- MobileNetV2 ----

// (t, c, n, s) of torchvision's default inverted_residual_setting.
struct V2Row {
  int expand_ratio;
  int64_t channels;
  int num_blocks;
  int stride;
};
constexpr V2Row kV2Setting[] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
constexpr float kV2Eps = 1e-5f;

// InvertedResidual: [pw 1×1 ReLU6] → dw 3×3 ReLU6 → pw-linear 1×1 + BN [+ input], named
// "<prefix>.conv.<i>".
ValueId V2InvertedResidual(Graph& g, ValueId x, int64_t oup, int stride, int expand_ratio,
                           const std::string& prefix) {
  const int64_t inp = g.value(x).dims.c;
  const int64_t hidden = PyRound(static_cast<double>(inp) * expand_ratio);
  int index = 0;
  auto next = [&] { return absl::StrCat(prefix, ".conv.", index++); };
  ValueId y = x;
  if (expand_ratio != 1) {
    y = ConvBnAct(g, y, ConvSpec{.out_channels = hidden, .kernel = 1}, Activation::kReLU6, kV2Eps,
                  next());
  }
  y = ConvBnAct(g, y,
                ConvSpec{.out_channels = hidden, .kernel = 3, .stride = stride, .groups = hidden},
                Activation::kReLU6, kV2Eps, next());
  y = Conv(g, y, ConvSpec{.out_channels = oup, .kernel = 1}, /*bias=*/false, next());
  y = g.BatchNorm(y, next(), kV2Eps);
  if (stride == 1 && inp == oup) y = g.Add(x, y);
  return y;
}

// ---- MobileNetV3 ----

// InvertedResidualConfig(input, kernel, expanded, out, use_se, activation, stride, dilation)
// before width scaling; hard_swish selects "HS" over "RE".
struct V3Row {
  int64_t input_channels;
  int kernel;
  int64_t expanded_channels;
  int64_t out_channels;
  bool use_se;
  bool hard_swish;
  int stride;
};
constexpr V3Row kV3Large[] = {
    {16, 3, 16, 16, false, false, 1},  {16, 3, 64, 24, false, false, 2},
    {24, 3, 72, 24, false, false, 1},  {24, 5, 72, 40, true, false, 2},
    {40, 5, 120, 40, true, false, 1},  {40, 5, 120, 40, true, false, 1},
    {40, 3, 240, 80, false, true, 2},  {80, 3, 200, 80, false, true, 1},
    {80, 3, 184, 80, false, true, 1},  {80, 3, 184, 80, false, true, 1},
    {80, 3, 480, 112, true, true, 1},  {112, 3, 672, 112, true, true, 1},
    {112, 5, 672, 160, true, true, 2}, {160, 5, 960, 160, true, true, 1},
    {160, 5, 960, 160, true, true, 1},
};
constexpr V3Row kV3Small[] = {
    {16, 3, 16, 16, true, false, 2},  {16, 3, 72, 24, false, false, 2},
    {24, 3, 88, 24, false, false, 1}, {24, 5, 96, 40, true, true, 2},
    {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
    {40, 5, 120, 48, true, true, 1},  {48, 5, 144, 48, true, true, 1},
    {48, 5, 288, 96, true, true, 2},  {96, 5, 576, 96, true, true, 1},
    {96, 5, 576, 96, true, true, 1},
};
constexpr int64_t kV3LargeLastChannel = 1280;
constexpr int64_t kV3SmallLastChannel = 1024;
constexpr float kV3Eps = 1e-3f;  // norm_layer = partial(nn.BatchNorm2d, eps=0.001)

// InvertedResidual (V3): [expand 1×1] → dw k×k → [SE(ReLU, Hardsigmoid)] → project 1×1
// [+ input], named "<prefix>.block.<i>".
ValueId V3InvertedResidual(Graph& g, ValueId x, const V3Row& raw, double width_mult,
                           const std::string& prefix) {
  const int64_t in = MakeDivisible(static_cast<double>(raw.input_channels) * width_mult, 8);
  const int64_t expanded =
      MakeDivisible(static_cast<double>(raw.expanded_channels) * width_mult, 8);
  const int64_t out = MakeDivisible(static_cast<double>(raw.out_channels) * width_mult, 8);
  const Activation act = raw.hard_swish ? Activation::kHardSwish : Activation::kReLU;
  int index = 0;
  auto next = [&] { return absl::StrCat(prefix, ".block.", index++); };
  ValueId y = x;
  if (expanded != in) {
    y = ConvBnAct(g, y, ConvSpec{.out_channels = expanded, .kernel = 1}, act, kV3Eps, next());
  }
  y = ConvBnAct(
      g, y,
      ConvSpec{
          .out_channels = expanded, .kernel = raw.kernel, .stride = raw.stride, .groups = expanded},
      act, kV3Eps, next());
  if (raw.use_se) {
    const int64_t squeeze = MakeDivisible(static_cast<double>(expanded / 4), 8);
    y = SqueezeExcite(g, y, squeeze, Activation::kReLU, Activation::kHardSigmoid, next());
  }
  y = ConvBnAct(g, y, ConvSpec{.out_channels = out, .kernel = 1}, Activation::kNone, kV3Eps,
                next());
  if (raw.stride == 1 && in == out) y = g.Add(y, x);
  return y;
}

}  // namespace

absl::StatusOr<Graph> BuildFamily(const MobileNetV2Params& p, const BuildSpec& spec) {
  if (p.width_mult <= 0) return absl::InvalidArgumentError("invalid MobileNetV2 width_mult");
  constexpr int kRound = 8;
  ValueId x;
  Graph g = NewModelGraph(spec.input_size, &x);
  const int64_t input_channel = MakeDivisible(32 * p.width_mult, kRound);
  const int64_t last_channel = MakeDivisible(1280 * std::max(1.0, p.width_mult), kRound);
  x = ConvBnAct(g, x, ConvSpec{.out_channels = input_channel, .kernel = 3, .stride = 2},
                Activation::kReLU6, kV2Eps, "features.0");
  int feature = 1;
  for (const V2Row& row : kV2Setting) {
    const int64_t out = MakeDivisible(static_cast<double>(row.channels) * p.width_mult, kRound);
    for (int i = 0; i < row.num_blocks; ++i) {
      x = V2InvertedResidual(g, x, out, i == 0 ? row.stride : 1, row.expand_ratio,
                             absl::StrCat("features.", feature++));
    }
  }
  x = ConvBnAct(g, x, ConvSpec{.out_channels = last_channel, .kernel = 1}, Activation::kReLU6,
                kV2Eps, absl::StrCat("features.", feature));
  x = g.GlobalAvgPool(x);
  Logits(g, x, spec.num_classes, "classifier.1");  // classifier.0 is Dropout
  return g;
}

absl::StatusOr<Graph> BuildFamily(const MobileNetV3Params& p, const BuildSpec& spec) {
  if (p.width_mult <= 0) return absl::InvalidArgumentError("invalid MobileNetV3 width_mult");
  const V3Row* rows = p.large ? kV3Large : kV3Small;
  const size_t num_rows = p.large ? std::size(kV3Large) : std::size(kV3Small);
  const int64_t last_channel = MakeDivisible(
      static_cast<double>(p.large ? kV3LargeLastChannel : kV3SmallLastChannel) * p.width_mult, 8);
  ValueId x;
  Graph g = NewModelGraph(spec.input_size, &x);
  const int64_t first =
      MakeDivisible(static_cast<double>(rows[0].input_channels) * p.width_mult, 8);
  x = ConvBnAct(g, x, ConvSpec{.out_channels = first, .kernel = 3, .stride = 2},
                Activation::kHardSwish, kV3Eps, "features.0");
  for (size_t i = 0; i < num_rows; ++i) {
    x = V3InvertedResidual(g, x, rows[i], p.width_mult, absl::StrCat("features.", i + 1));
  }
  const int64_t last_in = g.value(x).dims.c;
  x = ConvBnAct(g, x, ConvSpec{.out_channels = 6 * last_in, .kernel = 1}, Activation::kHardSwish,
                kV3Eps, absl::StrCat("features.", num_rows + 1));
  x = g.GlobalAvgPool(x);
  // classifier: Linear(6C, last_channel), Hardswish, Dropout, Linear(last_channel, classes).
  x = g.Linear(x, last_channel, /*bias=*/true, "classifier.0");
  x = g.Act(x, Activation::kHardSwish);
  Logits(g, x, spec.num_classes, "classifier.3");
  return g;
}

}  // namespace visionserve::models::internal
