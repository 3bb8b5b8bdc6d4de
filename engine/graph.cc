#include "engine/graph.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace visionserve::engine {

namespace {

// Aborts on a model builder's programming error (never reached from user input).
#define VS_GRAPH_CHECK(cond, msg)                                                        \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "graph builder: %s (%s)\n", std::string(msg).c_str(), #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// Debian's abseil has its own string_view type.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

int64_t ConvOut(int64_t in, int k, int stride, int pad_a, int pad_b, int dilation) {
  return (in + pad_a + pad_b - dilation * (k - 1) - 1) / stride + 1;
}

}  // namespace

std::string_view OpTypeName(OpType type) {
  static constexpr std::string_view kNames[] = {
      "Input",         "Conv2D",    "BatchNorm",     "Activation",   "Add",    "Mul",
      "ChannelScale",  "LayerNorm", "GlobalAvgPool", "MaxPool",      "Linear", "Softmax",
      "SqueezeExcite", "Upsample",  "Concat",        "DetectDecode", "Slice"};
  static_assert(std::size(kNames) == static_cast<size_t>(OpType::kCount),
                "every OpType needs a name");
  return kNames[static_cast<size_t>(type)];
}

int64_t Param::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

ValueId Graph::NewValue(std::string name, Dims dims, int32_t producer) {
  values_.push_back(Value{std::move(name), dims, producer});
  return static_cast<ValueId>(values_.size() - 1);
}

ParamId Graph::NewParam(std::string name, std::vector<int64_t> shape, ParamRole role,
                        int64_t fan_in) {
  Param p;
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.role = role;
  p.fan_in = fan_in;
  return AddParam(std::move(p));
}

ParamId Graph::AddParam(Param p) {
  params_.push_back(std::move(p));
  return static_cast<ParamId>(params_.size() - 1);
}

ValueId Graph::AddNode(Node node, Dims out_dims) {
  int32_t index = static_cast<int32_t>(nodes_.size());
  std::string vname =
      node.name.empty() ? absl::StrCat(Sv(OpTypeName(node.type)), "_", index) : node.name;
  node.output = NewValue(std::move(vname), out_dims, index);
  ValueId out = node.output;
  nodes_.push_back(std::move(node));
  return out;
}

ValueId Graph::Input(std::string name, Dims dims) {
  ValueId v = NewValue(std::move(name), dims, -1);
  inputs_.push_back(v);
  return v;
}

ValueId Graph::Conv2D(ValueId x, const Conv2DAttrs& a, bool bias, std::string_view prefix) {
  const Dims& in = value(x).dims;
  VS_GRAPH_CHECK(a.groups >= 1 && in.c % a.groups == 0 && a.out_channels % a.groups == 0,
                 absl::StrCat(Sv(prefix), ": groups must divide channels"));
  VS_GRAPH_CHECK(a.stride_h >= 1 && a.stride_w >= 1 && a.kernel_h >= 1 && a.kernel_w >= 1,
                 absl::StrCat(Sv(prefix), ": bad kernel/stride"));
  Dims out{ConvOut(in.h, a.kernel_h, a.stride_h, a.pad_top, a.pad_bottom, a.dilation_h),
           ConvOut(in.w, a.kernel_w, a.stride_w, a.pad_left, a.pad_right, a.dilation_w),
           a.out_channels};
  VS_GRAPH_CHECK(out.h >= 1 && out.w >= 1, absl::StrCat(Sv(prefix), ": empty output"));
  int64_t cin_g = in.c / a.groups;
  Node n;
  n.type = OpType::kConv2D;
  n.name = std::string(prefix);
  n.inputs = {x};
  n.attrs = a;
  int64_t fan_in = cin_g * a.kernel_h * a.kernel_w;
  n.params.push_back(NewParam(absl::StrCat(Sv(prefix), ".weight"),
                              {a.out_channels, cin_g, a.kernel_h, a.kernel_w}, ParamRole::kWeight,
                              fan_in));
  if (bias) {
    n.params.push_back(
        NewParam(absl::StrCat(Sv(prefix), ".bias"), {a.out_channels}, ParamRole::kBias, fan_in));
  }
  return AddNode(std::move(n), out);
}

ValueId Graph::BatchNorm(ValueId x, std::string_view prefix, float eps) {
  int64_t c = value(x).dims.c;
  Node n;
  n.type = OpType::kBatchNorm;
  n.name = std::string(prefix);
  n.inputs = {x};
  n.attrs = BatchNormAttrs{eps};
  n.params = {NewParam(absl::StrCat(Sv(prefix), ".weight"), {c}, ParamRole::kBnGamma, 0),
              NewParam(absl::StrCat(Sv(prefix), ".bias"), {c}, ParamRole::kBnBeta, 0),
              NewParam(absl::StrCat(Sv(prefix), ".running_mean"), {c}, ParamRole::kBnMean, 0),
              NewParam(absl::StrCat(Sv(prefix), ".running_var"), {c}, ParamRole::kBnVar, 0)};
  return AddNode(std::move(n), value(x).dims);
}

ValueId Graph::Act(ValueId x, Activation act) {
  Node n;
  n.type = OpType::kActivation;
  n.inputs = {x};
  n.attrs = ActivationAttrs{act};
  return AddNode(std::move(n), value(x).dims);
}

ValueId Graph::Add(ValueId a, ValueId b, Activation act) {
  VS_GRAPH_CHECK(value(a).dims == value(b).dims,
                 absl::StrCat("Add: dims differ ", value(a).dims.ToString(), " vs ",
                              value(b).dims.ToString()));
  Node n;
  n.type = OpType::kAdd;
  n.inputs = {a, b};
  n.attrs = AddAttrs{act};
  return AddNode(std::move(n), value(a).dims);
}

ValueId Graph::Mul(ValueId x, ValueId s) {
  const Dims& sd = value(s).dims;
  VS_GRAPH_CHECK(sd.h == 1 && sd.w == 1 && sd.c == value(x).dims.c,
                 "Mul: scale must be 1x1xC with x's channels");
  Node n;
  n.type = OpType::kMul;
  n.inputs = {x, s};
  return AddNode(std::move(n), value(x).dims);
}

ValueId Graph::ChannelScale(ValueId x, std::string_view param_name) {
  int64_t c = value(x).dims.c;
  Node n;
  n.type = OpType::kChannelScale;
  n.name = std::string(param_name);
  n.inputs = {x};
  n.params = {NewParam(std::string(param_name), {c}, ParamRole::kLayerScale, 0)};
  return AddNode(std::move(n), value(x).dims);
}

ValueId Graph::LayerNorm(ValueId x, std::string_view prefix, float eps) {
  int64_t c = value(x).dims.c;
  Node n;
  n.type = OpType::kLayerNorm;
  n.name = std::string(prefix);
  n.inputs = {x};
  n.attrs = LayerNormAttrs{eps};
  n.params = {NewParam(absl::StrCat(Sv(prefix), ".weight"), {c}, ParamRole::kLnGamma, 0),
              NewParam(absl::StrCat(Sv(prefix), ".bias"), {c}, ParamRole::kLnBeta, 0)};
  return AddNode(std::move(n), value(x).dims);
}

ValueId Graph::GlobalAvgPool(ValueId x) {
  Node n;
  n.type = OpType::kGlobalAvgPool;
  n.inputs = {x};
  return AddNode(std::move(n), Dims{1, 1, value(x).dims.c});
}

ValueId Graph::MaxPool(ValueId x, const MaxPoolAttrs& a) {
  const Dims& in = value(x).dims;
  Dims out{ConvOut(in.h, a.kernel_h, a.stride_h, a.pad_top, a.pad_bottom, 1),
           ConvOut(in.w, a.kernel_w, a.stride_w, a.pad_left, a.pad_right, 1), in.c};
  Node n;
  n.type = OpType::kMaxPool;
  n.inputs = {x};
  n.attrs = a;
  return AddNode(std::move(n), out);
}

ValueId Graph::Linear(ValueId x, int64_t out_features, bool bias, std::string_view prefix) {
  const Dims& in = value(x).dims;
  VS_GRAPH_CHECK(in.h == 1 && in.w == 1, "Linear: input must be 1x1xK");
  Node n;
  n.type = OpType::kLinear;
  n.name = std::string(prefix);
  n.inputs = {x};
  n.attrs = LinearAttrs{out_features, Activation::kNone, false};
  n.params.push_back(NewParam(absl::StrCat(Sv(prefix), ".weight"), {out_features, in.c},
                              ParamRole::kWeight, in.c));
  if (bias) {
    n.params.push_back(
        NewParam(absl::StrCat(Sv(prefix), ".bias"), {out_features}, ParamRole::kBias, in.c));
  }
  return AddNode(std::move(n), Dims{1, 1, out_features});
}

ValueId Graph::Softmax(ValueId x) {
  Node n;
  n.type = OpType::kSoftmax;
  n.inputs = {x};
  return AddNode(std::move(n), value(x).dims);
}

ValueId Graph::SqueezeExcite(ValueId x, const SqueezeExciteAttrs& a, std::string_view prefix) {
  int64_t c = value(x).dims.c;
  int64_t s = a.squeeze_channels;
  Node n;
  n.type = OpType::kSqueezeExcite;
  n.name = std::string(prefix);
  n.inputs = {x};
  n.attrs = a;
  n.params = {
      NewParam(absl::StrCat(Sv(prefix), ".fc1.weight"), {s, c, 1, 1}, ParamRole::kWeight, c),
      NewParam(absl::StrCat(Sv(prefix), ".fc1.bias"), {s}, ParamRole::kBias, c),
      NewParam(absl::StrCat(Sv(prefix), ".fc2.weight"), {c, s, 1, 1}, ParamRole::kWeight, s),
      NewParam(absl::StrCat(Sv(prefix), ".fc2.bias"), {c}, ParamRole::kBias, s)};
  return AddNode(std::move(n), value(x).dims);
}

ValueId Graph::Upsample(ValueId x, int factor_h, int factor_w) {
  VS_GRAPH_CHECK(factor_h >= 1 && factor_h <= 16 && factor_w >= 1 && factor_w <= 16,
                 "Upsample: factors must be in [1, 16]");
  const Dims& in = value(x).dims;
  Node n;
  n.type = OpType::kUpsample;
  n.inputs = {x};
  n.attrs = UpsampleAttrs{factor_h, factor_w};
  return AddNode(std::move(n), Dims{in.h * factor_h, in.w * factor_w, in.c});
}

ValueId Graph::Concat(std::span<const ValueId> xs) {
  VS_GRAPH_CHECK(!xs.empty(), "Concat: no inputs");
  Dims out = value(xs[0]).dims;
  out.c = 0;
  for (ValueId v : xs) {
    VS_GRAPH_CHECK(value(v).dims.h == out.h && value(v).dims.w == out.w,
                   absl::StrCat("Concat: spatial sizes differ ", value(xs[0]).dims.ToString(),
                                " vs ", value(v).dims.ToString()));
    out.c += value(v).dims.c;
  }
  Node n;
  n.type = OpType::kConcat;
  n.inputs.assign(xs.begin(), xs.end());
  return AddNode(std::move(n), out);
}

ValueId Graph::Slice(ValueId x, int64_t begin, int64_t end) {
  const Dims in = value(x).dims;
  VS_GRAPH_CHECK(begin >= 0 && begin < end && end <= in.c,
                 absl::StrCat("Slice: channels [", begin, ", ", end, ") of ", in.c));
  Node n;
  n.type = OpType::kSlice;
  n.inputs = {x};
  n.attrs = SliceAttrs{begin, end};
  return AddNode(std::move(n), Dims{in.h, in.w, end - begin});
}

ValueId Graph::DetectDecode(std::span<const ValueId> levels, const DetectDecodeAttrs& a) {
  VS_GRAPH_CHECK(!levels.empty() && levels.size() == a.strides.size(),
                 "DetectDecode: one stride per level");
  VS_GRAPH_CHECK(a.num_classes >= 1 && a.reg_max >= 1, "DetectDecode: bad classes or reg_max");
  int64_t anchors = 0;
  for (ValueId v : levels) {
    const Dims& d = value(v).dims;
    VS_GRAPH_CHECK(d.c == 4 * a.reg_max + a.num_classes,
                   absl::StrCat("DetectDecode: level has ", d.c, " channels, expected ",
                                4 * a.reg_max + a.num_classes));
    anchors += d.h * d.w;
  }
  Node n;
  n.type = OpType::kDetectDecode;
  n.inputs.assign(levels.begin(), levels.end());
  n.attrs = a;
  return AddNode(std::move(n), Dims{4 + a.num_classes, anchors, 1});
}

std::vector<int32_t> Graph::UseCounts() const {
  std::vector<int32_t> uses(values_.size(), 0);
  for (const Node& n : nodes_) {
    if (n.dead) continue;
    for (ValueId v : n.inputs) ++uses[v];
  }
  for (ValueId v : outputs_) ++uses[v];
  return uses;
}

int64_t Graph::ParameterCount() const {
  int64_t total = 0;
  std::vector<bool> seen(params_.size(), false);
  for (const Node& n : nodes_) {
    if (n.dead) continue;
    for (ParamId p : n.params) {
      if (seen[p] || params_[p].is_buffer()) continue;
      seen[p] = true;
      total += params_[p].numel();
    }
  }
  return total;
}

int64_t Graph::Macs() const {
  int64_t macs = 0;
  for (const Node& n : nodes_) {
    if (n.dead) continue;
    const Dims& out = values_[n.output].dims;
    if (n.type == OpType::kConv2D) {
      const auto& a = n.attr<Conv2DAttrs>();
      int64_t cin_g = values_[n.inputs[0]].dims.c / a.groups;
      macs += out.elements() * cin_g * a.kernel_h * a.kernel_w;
    } else if (n.type == OpType::kLinear) {
      macs += values_[n.inputs[0]].dims.c * out.c;
    } else if (n.type == OpType::kSqueezeExcite) {
      const auto& a = n.attr<SqueezeExciteAttrs>();
      macs += 2 * out.c * a.squeeze_channels;
    }
  }
  return macs;
}

absl::Status Graph::Validate() const {
  std::vector<bool> defined(values_.size(), false);
  for (ValueId v : inputs_) defined[v] = true;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (n.dead) continue;
    for (ValueId v : n.inputs) {
      if (v < 0 || v >= num_values() || !defined[v]) {
        return absl::FailedPreconditionError(
            absl::StrFormat("node %d (%s %s) reads value %d before it is defined", i,
                            OpTypeName(n.type), n.name, v));
      }
    }
    if (n.output < 0 || n.output >= num_values()) {
      return absl::FailedPreconditionError(absl::StrFormat("node %d has no output", i));
    }
    defined[n.output] = true;
    for (ParamId p : n.params) {
      const Param& prm = params_[p];
      if (static_cast<int64_t>(prm.data.size()) != prm.numel()) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "param %s has %d values, shape needs %d", prm.name, prm.data.size(), prm.numel()));
      }
    }
  }
  for (ValueId v : outputs_) {
    if (v < 0 || v >= num_values() || !defined[v]) {
      return absl::FailedPreconditionError(absl::StrFormat("graph output %d is not defined", v));
    }
  }
  if (outputs_.empty()) return absl::FailedPreconditionError("graph has no outputs");
  return absl::OkStatus();
}

void Graph::Compact() {
  std::vector<Node> nodes;
  std::vector<int32_t> value_map(values_.size(), -1);
  std::vector<int32_t> param_map(params_.size(), -1);
  std::vector<Value> values;
  std::vector<Param> params;
  auto map_value = [&](ValueId v) {
    if (value_map[v] < 0) {
      value_map[v] = static_cast<int32_t>(values.size());
      values.push_back(values_[v]);
    }
    return value_map[v];
  };
  for (ValueId& v : inputs_) v = map_value(v);
  for (Node& n : nodes_) {
    if (n.dead) continue;
    for (ValueId& v : n.inputs) v = map_value(v);
    for (ParamId& p : n.params) {
      if (param_map[p] < 0) {
        param_map[p] = static_cast<int32_t>(params.size());
        params.push_back(std::move(params_[p]));
      }
      p = param_map[p];
    }
    n.output = map_value(n.output);
    values[n.output].producer = static_cast<int32_t>(nodes.size());
    nodes.push_back(std::move(n));
  }
  for (ValueId& v : outputs_) v = map_value(v);
  nodes_ = std::move(nodes);
  values_ = std::move(values);
  params_ = std::move(params);
}

}  // namespace visionserve::engine
