// RegNetX / RegNetY as torchvision.models.regnet builds them.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "models/builders.h"

namespace visionserve::models::internal {

namespace {

using engine::Activation;
using engine::Graph;
using engine::ValueId;

struct Stage {
  int64_t width = 0;
  int depth = 0;
  int64_t group_width = 0;
};

// BlockParams.from_init_params. torch evaluates the width ramp in float32 (arange * w_a + w_0,
// log, pow, round-half-even), so this does too: a double evaluation could round a width that
// sits near a quantisation boundary differently.
absl::StatusOr<std::vector<Stage>> StagesFromInitParams(const RegNetParams& p) {
  if (p.depth < 1 || p.w_a < 0 || p.w_0 <= 0 || p.w_m <= 1 || p.w_0 % 8 != 0 || p.group_width < 1 ||
      p.bottleneck_multiplier <= 0) {
    return absl::InvalidArgumentError("invalid RegNet settings");
  }
  constexpr float kQuant = 8.0f;
  const float w_a = static_cast<float>(p.w_a);
  const float w_0 = static_cast<float>(p.w_0);
  const float w_m = static_cast<float>(p.w_m);
  const float log_w_m = static_cast<float>(std::log(p.w_m));  // math.log, cast to the tensor
  std::vector<int64_t> block_widths;
  for (int i = 0; i < p.depth; ++i) {
    const float cont = static_cast<float>(i) * w_a + w_0;
    const float capacity = std::nearbyint(std::log(cont / w_0) / log_w_m);
    const float width = std::nearbyint(w_0 * std::pow(w_m, capacity) / kQuant) * kQuant;
    block_widths.push_back(static_cast<int64_t>(width));
  }
  // Consecutive blocks of equal width form a stage.
  std::vector<Stage> stages;
  for (int64_t w : block_widths) {
    if (stages.empty() || stages.back().width != w) stages.push_back(Stage{w, 0, p.group_width});
    ++stages.back().depth;
  }
  // _adjust_widths_groups_compatibilty.
  for (Stage& s : stages) {
    const int64_t w_bot =
        static_cast<int64_t>(static_cast<double>(s.width) * p.bottleneck_multiplier);
    s.group_width = std::min<int64_t>(s.group_width, w_bot);
    const int64_t w_bot_adj = MakeDivisible(static_cast<double>(w_bot), s.group_width);
    s.width = static_cast<int64_t>(static_cast<double>(w_bot_adj) / p.bottleneck_multiplier);
  }
  return stages;
}

// ResBottleneckBlock: [proj] + f(x) where f = a (1×1) → b (3×3 grouped, stride) → [se] → c (1×1),
// then ReLU.
ValueId ResBottleneckBlock(Graph& g, ValueId x, int64_t width_out, int stride, int64_t group_width,
                           const RegNetParams& p, const std::string& prefix) {
  constexpr float kEps = 1e-5f;
  const int64_t width_in = g.value(x).dims.c;
  ValueId shortcut = x;
  if (width_in != width_out || stride != 1) {
    shortcut = ConvBnAct(g, x, ConvSpec{.out_channels = width_out, .kernel = 1, .stride = stride},
                         Activation::kNone, kEps, prefix + ".proj");
  }
  const int64_t w_b = PyRound(static_cast<double>(width_out) * p.bottleneck_multiplier);
  const int64_t groups = w_b / group_width;
  ValueId f = ConvBnAct(g, x, ConvSpec{.out_channels = w_b, .kernel = 1}, Activation::kReLU, kEps,
                        prefix + ".f.a");
  f = ConvBnAct(g, f,
                ConvSpec{.out_channels = w_b, .kernel = 3, .stride = stride, .groups = groups},
                Activation::kReLU, kEps, prefix + ".f.b");
  if (p.se_ratio > 0) {
    // The SE reduction is relative to the block's input width.
    const int64_t squeeze = PyRound(p.se_ratio * static_cast<double>(width_in));
    f = SqueezeExcite(g, f, squeeze, Activation::kReLU, Activation::kSigmoid, prefix + ".f.se");
  }
  f = ConvBnAct(g, f, ConvSpec{.out_channels = width_out, .kernel = 1}, Activation::kNone, kEps,
                prefix + ".f.c");
  return g.Add(shortcut, f, Activation::kReLU);
}

}  // namespace

absl::StatusOr<Graph> BuildFamily(const RegNetParams& p, const BuildSpec& spec) {
  absl::StatusOr<std::vector<Stage>> stages = StagesFromInitParams(p);
  if (!stages.ok()) return stages.status();
  ValueId x;
  Graph g = NewModelGraph(spec.input_size, &x);
  // SimpleStemIN: 3×3 stride 2, BN, ReLU.
  x = ConvBnAct(g, x, ConvSpec{.out_channels = p.stem_width, .kernel = 3, .stride = 2},
                Activation::kReLU, 1e-5f, "stem");
  for (size_t i = 0; i < stages->size(); ++i) {
    const Stage& s = (*stages)[i];
    const std::string stage = absl::StrCat("trunk_output.block", i + 1);
    for (int j = 0; j < s.depth; ++j) {
      x = ResBottleneckBlock(g, x, s.width, j == 0 ? 2 : 1, s.group_width, p,
                             absl::StrCat(stage, ".block", i + 1, "-", j));
    }
  }
  x = g.GlobalAvgPool(x);
  Logits(g, x, spec.num_classes, "fc");
  return g;
}

}  // namespace visionserve::models::internal
