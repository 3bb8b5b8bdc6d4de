#pragma once

// The engine's graph IR: typed ops with typed attributes over batch-free NHWC values.
//
// Model builders (models/) create graphs with the same layers and parameter names and layouts
// as torchvision (conv weights OIHW, linear weights [out, in], batch-norm running stats), so
// real weights load by name. Passes (engine/passes.h) then rewrite the graph into fused ops
// (conv + bias + activation + residual, squeeze-excite, ...) before planning.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/activation.h"
#include "engine/tensor.h"

namespace visionserve::engine {

using ValueId = int32_t;
using ParamId = int32_t;
inline constexpr ValueId kNoValue = -1;

enum class OpType : uint8_t {
  kInput,
  kConv2D,         // inputs: x [, residual]; params: weight OIHW [, bias O]
  kBatchNorm,      // inputs: x; params: weight, bias, running_mean, running_var (all C)
  kActivation,     // inputs: x
  kAdd,            // inputs: a, b (same dims) [, then activation]
  kMul,            // inputs: x [N,H,W,C], s [N,1,1,C] (per-image channel scale, broadcast)
  kChannelScale,   // inputs: x; params: scale C (ConvNeXt layer scale)
  kLayerNorm,      // inputs: x; params: weight, bias (C); normalizes over channels
  kGlobalAvgPool,  // inputs: x -> 1×1×C
  kMaxPool,        // inputs: x
  kLinear,         // inputs: x 1×1×K [, residual]; params: weight [N, K] [, bias N]
  kSoftmax,        // inputs: x 1×1×C
  kSqueezeExcite,  // inputs: x; params: fc1.weight [S,C,1,1], fc1.bias, fc2.weight [C,S,1,1],
                   // fc2.bias. x * gate(fc2(act(fc1(avgpool(x)))))
  kUpsample,       // inputs: x -> nearest-neighbour upsampling by integer factors (torch's
                   // nn.Upsample(scale_factor=f, mode="nearest")): out[y][x] = in[y/fh][x/fw]
  kConcat,         // inputs: x0, x1, ... (same H, W) -> their channels, concatenated in order
  kDetectDecode,   // inputs: one head map per pyramid level [h, w, 4·reg_max + classes] ->
                   // YOLOv8's output convention, dims {4 + classes, anchors, 1} (see attrs)
  kSlice,          // inputs: x -> channels [begin, end) of x (ONNX Split/Slice on channels)
  kCount,
};
std::string_view OpTypeName(OpType type);

struct Conv2DAttrs {
  int64_t out_channels = 0;
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  // Fused epilogue, in order: + bias, + residual (inputs[1]) if fused_residual, activation.
  Activation act = Activation::kNone;
  bool fused_residual = false;
  // Depthwise only: after the epilogue, normalise each pixel's channels to zero mean and unit
  // variance (a LayerNorm whose affine was folded into the consumer), with this eps.
  bool fused_channel_norm = false;
  float norm_eps = 1e-6f;
  bool is_depthwise(int64_t in_channels) const {
    return groups == in_channels && out_channels == in_channels && groups > 1;
  }
};

struct BatchNormAttrs {
  float eps = 1e-5f;
};

struct ActivationAttrs {
  Activation act = Activation::kNone;
};

struct AddAttrs {
  Activation act = Activation::kNone;  // applied after the sum
};

struct LayerNormAttrs {
  float eps = 1e-6f;
};

struct MaxPoolAttrs {
  int kernel_h = 3, kernel_w = 3;
  int stride_h = 2, stride_w = 2;
  int pad_top = 1, pad_left = 1, pad_bottom = 1, pad_right = 1;
};

struct LinearAttrs {
  int64_t out_features = 0;
  Activation act = Activation::kNone;  // epilogue: + bias, + residual (inputs[1]), activation
  bool fused_residual = false;
};

struct UpsampleAttrs {
  int factor_h = 2, factor_w = 2;
};

struct SliceAttrs {
  int64_t begin = 0, end = 0;  // channel range [begin, end)
};

// Anchor-free detection head decode (YOLOv8's): every cell (x, y) of level l is an anchor at
// ((x + 0.5)·s_l, (y + 0.5)·s_l); its 4·reg_max box logits are four distance distributions
// (left, top, right, bottom; softmax over reg_max bins, expectation in cells) and its class
// logits go through a sigmoid. Output row k of the [4 + classes, anchors] result: cx, cy, w, h in
// input pixels, then the class scores; anchors run level by level, row-major.
struct DetectDecodeAttrs {
  int64_t num_classes = 80;
  int reg_max = 16;
  std::vector<int> strides;  // per input level, e.g. {8, 16, 32}
};

struct SqueezeExciteAttrs {
  int64_t squeeze_channels = 0;
  Activation inner_act = Activation::kReLU;
  Activation gate_act = Activation::kSigmoid;
};

using OpAttrs = std::variant<std::monostate, Conv2DAttrs, BatchNormAttrs, ActivationAttrs, AddAttrs,
                             LayerNormAttrs, MaxPoolAttrs, LinearAttrs, SqueezeExciteAttrs,
                             UpsampleAttrs, DetectDecodeAttrs, SliceAttrs>;

// What a parameter is for: decides synthetic initialisation and what passes may fold.
enum class ParamRole : uint8_t {
  kWeight,
  kBias,
  kBnGamma,
  kBnBeta,
  kBnMean,
  kBnVar,  // running stats are buffers in torch, not parameters
  kLnGamma,
  kLnBeta,
  kLayerScale,
};

struct Param {
  std::string name;  // torchvision state_dict key, e.g. "features.1.0.block.0.0.weight"
  std::vector<int64_t> shape;
  ParamRole role = ParamRole::kWeight;
  // Fan-in of the op that owns a weight (for synthetic init); 0 when not a weight.
  int64_t fan_in = 0;
  std::vector<float> data;  // row-major in `shape`; empty until initialised
  int64_t numel() const;
  bool is_buffer() const { return role == ParamRole::kBnMean || role == ParamRole::kBnVar; }
};

struct Value {
  std::string name;
  Dims dims;
  int32_t producer = -1;  // node index, -1 for graph inputs
};

struct Node {
  OpType type = OpType::kInput;
  std::string name;
  std::vector<ValueId> inputs;
  ValueId output = kNoValue;
  OpAttrs attrs;
  std::vector<ParamId> params;
  bool dead = false;  // removed by a pass; skipped everywhere, compacted by Graph::Compact()

  template <typename T>
  const T& attr() const {
    return std::get<T>(attrs);
  }
  template <typename T>
  T& attr() {
    return std::get<T>(attrs);
  }
};

class Graph {
 public:
  // Builders: each checks its inputs, infers the output dims, creates the node and its
  // zero-sized params named `<prefix>.weight`, `<prefix>.bias`, ... and returns the output.
  // Misuse (bad channel counts, groups not dividing channels) is a programming error in a
  // model builder and aborts with a message; importers must validate before calling.
  ValueId Input(std::string name, Dims dims);
  ValueId Conv2D(ValueId x, const Conv2DAttrs& attrs, bool bias, std::string_view prefix);
  ValueId BatchNorm(ValueId x, std::string_view prefix, float eps = 1e-5f);
  ValueId Act(ValueId x, Activation act);
  ValueId Add(ValueId a, ValueId b, Activation act = Activation::kNone);
  ValueId Mul(ValueId x, ValueId channel_scale);
  ValueId ChannelScale(ValueId x, std::string_view param_name);  // param named as given
  ValueId LayerNorm(ValueId x, std::string_view prefix, float eps = 1e-6f);
  ValueId GlobalAvgPool(ValueId x);
  ValueId MaxPool(ValueId x, const MaxPoolAttrs& attrs);
  ValueId Linear(ValueId x, int64_t out_features, bool bias, std::string_view prefix);
  ValueId Softmax(ValueId x);
  // A fused squeeze-excite with torchvision's SqueezeExcitation param names (<prefix>.fc1.*).
  ValueId SqueezeExcite(ValueId x, const SqueezeExciteAttrs& attrs, std::string_view prefix);
  // Nearest-neighbour upsampling by integer factors in [1, 16].
  ValueId Upsample(ValueId x, int factor_h, int factor_w);
  // Channel concatenation of one or more values with the same height and width.
  ValueId Concat(std::span<const ValueId> xs);
  // Channels [begin, end) of x, 0 <= begin < end <= channels.
  ValueId Slice(ValueId x, int64_t begin, int64_t end);
  // Decodes head maps (one per level, strides in attrs) into {4 + classes, anchors, 1}.
  ValueId DetectDecode(std::span<const ValueId> levels, const DetectDecodeAttrs& attrs);
  void MarkOutput(ValueId v) { outputs_.push_back(v); }
  void RenameValue(ValueId v, std::string name) { values_[v].name = std::move(name); }

  // Low-level: appends a node whose output value the caller describes.
  ValueId AddNode(Node node, Dims out_dims);
  ParamId AddParam(Param p);

  const std::vector<Node>& nodes() const { return nodes_; }
  std::vector<Node>& mutable_nodes() { return nodes_; }
  const Node& node(int32_t i) const { return nodes_[i]; }
  Node& mutable_node(int32_t i) { return nodes_[i]; }
  const Value& value(ValueId v) const { return values_[v]; }
  int32_t num_values() const { return static_cast<int32_t>(values_.size()); }
  const std::vector<ValueId>& inputs() const { return inputs_; }
  const std::vector<ValueId>& outputs() const { return outputs_; }
  std::vector<ValueId>& mutable_outputs() { return outputs_; }
  const Param& param(ParamId p) const { return params_[p]; }
  Param& mutable_param(ParamId p) { return params_[p]; }
  const std::vector<Param>& params() const { return params_; }
  std::vector<Param>& mutable_params() { return params_; }

  // Number of live consumers of each value (graph outputs count as one).
  std::vector<int32_t> UseCounts() const;
  // Parameter count as torch counts it: every learnable param, not BN running stats,
  // counting only params referenced by live nodes.
  int64_t ParameterCount() const;
  // Multiply-accumulates of one image through conv and linear ops (fvcore/torchvision style).
  int64_t Macs() const;
  // Checks topological order, arity, dims and params (data sizes match shapes).
  absl::Status Validate() const;
  // Drops dead nodes and unreferenced params/values, keeping order. Invalidates ids.
  void Compact();

 private:
  ValueId NewValue(std::string name, Dims dims, int32_t producer);
  ParamId NewParam(std::string name, std::vector<int64_t> shape, ParamRole role, int64_t fan_in);

  std::vector<Node> nodes_;
  std::vector<Value> values_;
  std::vector<Param> params_;
  std::vector<ValueId> inputs_;
  std::vector<ValueId> outputs_;
};

}  // namespace visionserve::engine
