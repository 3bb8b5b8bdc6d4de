#include "models/builders.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace visionserve::models::internal {

using engine::Activation;
using engine::Graph;
using engine::ValueId;

Graph NewModelGraph(int input_size, ValueId* input) {
  Graph g;
  *input = g.Input("input", engine::Dims{input_size, input_size, 3});
  return g;
}

ValueId Conv(Graph& g, ValueId x, const ConvSpec& spec, bool bias, const std::string& name) {
  engine::Conv2DAttrs a;
  a.out_channels = spec.out_channels;
  a.kernel_h = a.kernel_w = spec.kernel;
  a.stride_h = a.stride_w = spec.stride;
  a.dilation_h = a.dilation_w = spec.dilation;
  a.groups = spec.groups;
  const int pad = spec.padding >= 0 ? spec.padding : (spec.kernel - 1) / 2 * spec.dilation;
  a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = pad;
  return g.Conv2D(x, a, bias, name);
}

ValueId ConvBnAct(Graph& g, ValueId x, const ConvSpec& spec, Activation act, float bn_eps,
                  const std::string& prefix) {
  ValueId y = Conv(g, x, spec, /*bias=*/false, prefix + ".0");
  y = g.BatchNorm(y, prefix + ".1", bn_eps);
  return act == Activation::kNone ? y : g.Act(y, act);
}

ValueId SqueezeExcite(Graph& g, ValueId x, int64_t squeeze_channels, Activation inner,
                      Activation gate, const std::string& prefix) {
  engine::SqueezeExciteAttrs a;
  a.squeeze_channels = squeeze_channels;
  a.inner_act = inner;
  a.gate_act = gate;
  return g.SqueezeExcite(x, a, prefix);
}

ValueId Logits(Graph& g, ValueId x, int64_t num_classes, const std::string& prefix) {
  const int64_t k = g.value(x).dims.c;
  engine::Node n;
  n.type = engine::OpType::kLinear;
  n.name = "logits";  // names the output value
  n.inputs = {x};
  n.attrs = engine::LinearAttrs{num_classes, Activation::kNone, false};
  engine::Param w;
  w.name = prefix + ".weight";
  w.shape = {num_classes, k};
  w.role = engine::ParamRole::kWeight;
  w.fan_in = k;
  engine::Param b;
  b.name = prefix + ".bias";
  b.shape = {num_classes};
  b.role = engine::ParamRole::kBias;
  b.fan_in = k;
  n.params = {g.AddParam(std::move(w)), g.AddParam(std::move(b))};
  const ValueId out = g.AddNode(std::move(n), engine::Dims{1, 1, num_classes});
  g.MarkOutput(out);
  return out;
}

int64_t MakeDivisible(double v, int64_t divisor, int64_t min_value) {
  if (min_value <= 0) min_value = divisor;
  // int(v + divisor / 2) // divisor * divisor, with v > 0.
  const int64_t rounded =
      static_cast<int64_t>(v + static_cast<double>(divisor) / 2) / divisor * divisor;
  int64_t new_v = std::max(min_value, rounded);
  if (static_cast<double>(new_v) < 0.9 * v) new_v += divisor;
  return new_v;
}

int64_t PyRound(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

}  // namespace visionserve::models::internal
