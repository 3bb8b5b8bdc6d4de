// Engine graph → ONNX (NCHW, symbolic batch). Every engine op, fused or not, is written as the
// standard ONNX ops that compute it, so ONNX Runtime runs the identical model and the importer
// maps it back onto the same engine ops.

#include <cmath>
#include <fstream>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "models/onnx.h"
#include "onnx.pb.h"

namespace visionserve::models {

namespace {

using engine::Activation;
using engine::Graph;
using engine::Node;
using engine::OpType;
using engine::ValueId;

// An exported tensor: its name and rank (4: [N, C, H, W], 2: [N, C]).
struct Tensor {
  std::string name;
  int rank = 4;
};

class Exporter {
 public:
  Exporter(const Graph& g, const OnnxExportOptions& opts) : g_(g), opts_(opts) {}

  absl::StatusOr<std::string> Run() {
    if (opts_.opset < 13 || opts_.opset > 17) {
      return absl::InvalidArgumentError(
          absl::StrCat("export opset ", opts_.opset, " is not supported (13–17)"));
    }
    if (g_.inputs().size() != 1 || g_.outputs().size() != 1) {
      return absl::InvalidArgumentError("export needs a graph with one input and one output");
    }
    onnx::ModelProto model;
    model.set_ir_version(8);
    model.set_producer_name("visionserve");
    model.set_producer_version("0.1");
    onnx::OperatorSetIdProto* op = model.add_opset_import();
    op->set_domain("");
    op->set_version(opts_.opset);
    gp_ = model.mutable_graph();
    gp_->set_name(opts_.model_name.empty() ? "visionserve_model" : opts_.model_name);

    const ValueId in = g_.inputs()[0];
    const engine::Dims d = g_.value(in).dims;
    AddValueInfo(gp_->add_input(), "input", {-1, d.c, d.h, d.w});
    tensors_[in] = Tensor{"input", 4};
    for (int32_t i = 0; i < static_cast<int32_t>(g_.nodes().size()); ++i) {
      const Node& n = g_.node(i);
      if (n.dead) continue;
      if (absl::Status s = Emit(n); !s.ok()) return s;
    }
    const ValueId out = g_.outputs()[0];
    Tensor t = tensors_.at(out);
    t = To2D(t);
    Add("Identity", {t.name}, "logits");
    AddValueInfo(gp_->add_output(), "logits", {-1, g_.value(out).dims.c});
    std::string bytes;
    if (!model.SerializeToString(&bytes)) return absl::InternalError("ONNX serialization failed");
    return bytes;
  }

 private:
  static void AddValueInfo(onnx::ValueInfoProto* vi, const std::string& name,
                           const std::vector<int64_t>& dims) {
    vi->set_name(name);
    onnx::TypeProto_Tensor* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t v : dims) {
      onnx::TensorShapeProto_Dimension* dim = tt->mutable_shape()->add_dim();
      if (v < 0) {
        dim->set_dim_param("batch");
      } else {
        dim->set_dim_value(v);
      }
    }
  }

  std::string Fresh(absl::string_view hint) { return absl::StrCat(hint, "_", counter_++); }

  // Adds an initializer (unique name derived from `name`) and returns its name.
  std::string Init(const std::string& name, const std::vector<int64_t>& dims,
                   const std::vector<float>& data) {
    std::string unique = name.empty() ? Fresh("const") : name;
    if (!init_names_.insert({unique, 0}).second) unique = Fresh(name);
    init_names_.insert({unique, 0});
    onnx::TensorProto* t = gp_->add_initializer();
    t->set_name(unique);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t v : dims) t->add_dims(v);
    t->set_raw_data(
        std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float)));
    return unique;
  }
  std::string Scalar(float v) { return Init(Fresh("scalar"), {}, {v}); }
  std::string Ints(const std::vector<int64_t>& v) {
    const std::string name = Fresh("ints");
    onnx::TensorProto* t = gp_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
    return name;
  }

  onnx::NodeProto* Add(const std::string& op, const std::vector<std::string>& inputs,
                       const std::string& output = "") {
    onnx::NodeProto* n = gp_->add_node();
    n->set_op_type(op);
    n->set_name(Fresh(op));
    for (const std::string& in : inputs) n->add_input(in);
    n->add_output(output.empty() ? Fresh(absl::StrCat(op, "_out")) : output);
    return n;
  }
  static void IntsAttr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void IntAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void FloatAttr(onnx::NodeProto* n, const std::string& name, float v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static const std::string& Out(const onnx::NodeProto* n) { return n->output(0); }

  Tensor To2D(const Tensor& t) {
    if (t.rank == 2) return t;
    onnx::NodeProto* f = Add("Flatten", {t.name});
    IntAttr(f, "axis", 1);
    return Tensor{Out(f), 2};
  }
  Tensor To4D(const Tensor& t) {
    if (t.rank == 4) return t;
    if (opts_.opset >= 13) return Tensor{Out(Add("Unsqueeze", {t.name, Ints({2, 3})})), 4};
    onnx::NodeProto* u = Add("Unsqueeze", {t.name});
    IntsAttr(u, "axes", {2, 3});
    return Tensor{Out(u), 4};
  }

  std::string Activate(const std::string& x, Activation act) {
    switch (act) {
      case Activation::kNone:
        return x;
      case Activation::kReLU:
        return Out(Add("Relu", {x}));
      case Activation::kReLU6:
        return Out(Add("Clip", {x, Scalar(0.0f), Scalar(6.0f)}));
      case Activation::kSigmoid:
        return Out(Add("Sigmoid", {x}));
      case Activation::kSiLU:
        return Out(Add("Mul", {x, Out(Add("Sigmoid", {x}))}));
      case Activation::kGELU: {
        const std::string e =
            Out(Add("Erf", {Out(Add("Div", {x, Scalar(static_cast<float>(M_SQRT2))}))}));
        const std::string m = Out(Add("Mul", {x, Out(Add("Add", {e, Scalar(1.0f)}))}));
        return Out(Add("Mul", {m, Scalar(0.5f)}));
      }
      case Activation::kHardSigmoid: {
        onnx::NodeProto* h = Add("HardSigmoid", {x});
        FloatAttr(h, "alpha", 1.0f / 6.0f);
        FloatAttr(h, "beta", 0.5f);
        return Out(h);
      }
      case Activation::kHardSwish:
        if (opts_.opset >= 14) return Out(Add("HardSwish", {x}));
        return Out(Add("Mul", {x, Activate(x, Activation::kHardSigmoid)}));
    }
    return x;
  }

  // LayerNorm over channels of `x` (rank 4: via NHWC transposes; rank 2: directly).
  std::string ChannelLayerNorm(const Tensor& x, const std::vector<float>& gamma,
                               const std::vector<float>& beta, float eps,
                               const std::string& prefix) {
    const int64_t c = static_cast<int64_t>(gamma.size());
    std::string t = x.name;
    if (x.rank == 4) {
      onnx::NodeProto* tr = Add("Transpose", {t});
      IntsAttr(tr, "perm", {0, 2, 3, 1});
      t = Out(tr);
    }
    const std::string g = Init(prefix + ".weight", {c}, gamma);
    const std::string b = Init(prefix + ".bias", {c}, beta);
    std::string y;
    if (opts_.opset >= 17) {
      onnx::NodeProto* ln = Add("LayerNormalization", {t, g, b});
      IntAttr(ln, "axis", -1);
      FloatAttr(ln, "epsilon", eps);
      y = Out(ln);
    } else {
      auto mean = [&](const std::string& v) {
        onnx::NodeProto* r = Add("ReduceMean", {v});
        IntsAttr(r, "axes", {-1});
        return Out(r);
      };
      const std::string d = Out(Add("Sub", {t, mean(t)}));
      const std::string var = mean(Out(Add("Pow", {d, Scalar(2.0f)})));
      const std::string sd = Out(Add("Sqrt", {Out(Add("Add", {var, Scalar(eps)}))}));
      y = Out(Add("Add", {Out(Add("Mul", {Out(Add("Div", {d, sd})), g})), b}));
    }
    if (x.rank == 4) {
      onnx::NodeProto* tr = Add("Transpose", {y});
      IntsAttr(tr, "perm", {0, 3, 1, 2});
      y = Out(tr);
    }
    return y;
  }

  const std::vector<float>& P(const Node& n, int k) const { return g_.param(n.params[k]).data; }
  const std::string& PName(const Node& n, int k) const { return g_.param(n.params[k]).name; }

  std::string ConvNode(const Tensor& x, const engine::Conv2DAttrs& a, int64_t in_c,
                       const std::vector<float>& w, const std::string& w_name,
                       const std::vector<float>* b, const std::string& b_name) {
    std::vector<std::string> inputs = {
        x.name, Init(w_name, {a.out_channels, in_c / a.groups, a.kernel_h, a.kernel_w}, w)};
    if (b != nullptr) inputs.push_back(Init(b_name, {a.out_channels}, *b));
    onnx::NodeProto* c = Add("Conv", inputs);
    IntsAttr(c, "kernel_shape", {a.kernel_h, a.kernel_w});
    IntsAttr(c, "strides", {a.stride_h, a.stride_w});
    IntsAttr(c, "pads", {a.pad_top, a.pad_left, a.pad_bottom, a.pad_right});
    IntsAttr(c, "dilations", {a.dilation_h, a.dilation_w});
    IntAttr(c, "group", a.groups);
    return Out(c);
  }

  absl::Status Emit(const Node& n) {
    auto in = [&](int k) { return tensors_.at(n.inputs[k]); };
    const engine::Dims out_dims = g_.value(n.output).dims;
    Tensor y;
    switch (n.type) {
      case OpType::kConv2D: {
        const auto& a = n.attr<engine::Conv2DAttrs>();
        const Tensor x = To4D(in(0));
        const int64_t in_c = g_.value(n.inputs[0]).dims.c;
        const bool bias = n.params.size() > 1;
        std::string t = ConvNode(x, a, in_c, P(n, 0), PName(n, 0), bias ? &P(n, 1) : nullptr,
                                 bias ? PName(n, 1) : "");
        if (a.fused_residual) t = Out(Add("Add", {t, To4D(in(1)).name}));
        t = Activate(t, a.act);
        if (a.fused_channel_norm) {
          t = ChannelLayerNorm(Tensor{t, 4}, std::vector<float>(a.out_channels, 1.0f),
                               std::vector<float>(a.out_channels, 0.0f), a.norm_eps,
                               absl::StrCat(n.name, ".norm"));
        }
        y = Tensor{t, 4};
        break;
      }
      case OpType::kBatchNorm: {
        const int64_t c = out_dims.c;
        std::vector<std::string> inputs = {To4D(in(0)).name};
        for (int k = 0; k < 4; ++k) inputs.push_back(Init(PName(n, k), {c}, P(n, k)));
        onnx::NodeProto* bn = Add("BatchNormalization", inputs);
        FloatAttr(bn, "epsilon", n.attr<engine::BatchNormAttrs>().eps);
        y = Tensor{Out(bn), 4};
        break;
      }
      case OpType::kActivation:
        y = Tensor{Activate(in(0).name, n.attr<engine::ActivationAttrs>().act), in(0).rank};
        break;
      case OpType::kAdd: {
        Tensor a = in(0), b = in(1);
        if (a.rank != b.rank) {
          a = To4D(a);
          b = To4D(b);
        }
        y = Tensor{Activate(Out(Add("Add", {a.name, b.name})), n.attr<engine::AddAttrs>().act),
                   a.rank};
        break;
      }
      case OpType::kMul:
        y = Tensor{Out(Add("Mul", {To4D(in(0)).name, To4D(in(1)).name})), 4};
        break;
      case OpType::kChannelScale: {
        const Tensor x = in(0);
        const int64_t c = out_dims.c;
        const std::vector<int64_t> shape =
            x.rank == 4 ? std::vector<int64_t>{c, 1, 1} : std::vector<int64_t>{c};
        y = Tensor{Out(Add("Mul", {x.name, Init(PName(n, 0), shape, P(n, 0))})), x.rank};
        break;
      }
      case OpType::kLayerNorm:
        y = Tensor{
            ChannelLayerNorm(in(0), P(n, 0), P(n, 1), n.attr<engine::LayerNormAttrs>().eps, n.name),
            in(0).rank};
        break;
      case OpType::kGlobalAvgPool:
        y = Tensor{Out(Add("GlobalAveragePool", {To4D(in(0)).name})), 4};
        break;
      case OpType::kMaxPool: {
        const auto& a = n.attr<engine::MaxPoolAttrs>();
        onnx::NodeProto* mp = Add("MaxPool", {To4D(in(0)).name});
        IntsAttr(mp, "kernel_shape", {a.kernel_h, a.kernel_w});
        IntsAttr(mp, "strides", {a.stride_h, a.stride_w});
        IntsAttr(mp, "pads", {a.pad_top, a.pad_left, a.pad_bottom, a.pad_right});
        y = Tensor{Out(mp), 4};
        break;
      }
      case OpType::kLinear: {
        const auto& a = n.attr<engine::LinearAttrs>();
        const int64_t k_in = g_.value(n.inputs[0]).dims.c;
        std::vector<std::string> inputs = {To2D(in(0)).name,
                                           Init(PName(n, 0), {a.out_features, k_in}, P(n, 0))};
        if (n.params.size() > 1) inputs.push_back(Init(PName(n, 1), {a.out_features}, P(n, 1)));
        onnx::NodeProto* gemm = Add("Gemm", inputs);
        IntAttr(gemm, "transB", 1);
        std::string t = Out(gemm);
        if (a.fused_residual) t = Out(Add("Add", {t, To2D(in(1)).name}));
        y = Tensor{Activate(t, a.act), 2};
        break;
      }
      case OpType::kSoftmax: {
        onnx::NodeProto* s = Add("Softmax", {To2D(in(0)).name});
        IntAttr(s, "axis", -1);
        y = Tensor{Out(s), 2};
        break;
      }
      case OpType::kSqueezeExcite: {
        const auto& a = n.attr<engine::SqueezeExciteAttrs>();
        const Tensor x = To4D(in(0));
        const int64_t c = out_dims.c;
        engine::Conv2DAttrs fc;
        fc.out_channels = a.squeeze_channels;
        Tensor t{Out(Add("GlobalAveragePool", {x.name})), 4};
        t.name =
            Activate(ConvNode(t, fc, c, P(n, 0), PName(n, 0), &P(n, 1), PName(n, 1)), a.inner_act);
        fc.out_channels = c;
        t.name = Activate(
            ConvNode(t, fc, a.squeeze_channels, P(n, 2), PName(n, 2), &P(n, 3), PName(n, 3)),
            a.gate_act);
        y = Tensor{Out(Add("Mul", {x.name, t.name})), 4};
        break;
      }
      case OpType::kUpsample: {
        const auto& a = n.attr<engine::UpsampleAttrs>();
        onnx::NodeProto* r = Add(
            "Resize",
            {To4D(in(0)).name, "",
             Init(Fresh("scales"), {4},
                  {1.0f, 1.0f, static_cast<float>(a.factor_h), static_cast<float>(a.factor_w)})});
        onnx::AttributeProto* attr = r->add_attribute();
        attr->set_name("mode");
        attr->set_type(onnx::AttributeProto::STRING);
        attr->set_s("nearest");
        attr = r->add_attribute();
        attr->set_name("coordinate_transformation_mode");
        attr->set_type(onnx::AttributeProto::STRING);
        attr->set_s("asymmetric");
        attr = r->add_attribute();
        attr->set_name("nearest_mode");
        attr->set_type(onnx::AttributeProto::STRING);
        attr->set_s("floor");
        y = Tensor{Out(r), 4};
        break;
      }
      case OpType::kConcat: {
        std::vector<std::string> names;
        for (size_t k = 0; k < n.inputs.size(); ++k)
          names.push_back(To4D(in(static_cast<int>(k))).name);
        onnx::NodeProto* c = Add("Concat", names);
        IntAttr(c, "axis", 1);
        y = Tensor{Out(c), 4};
        break;
      }
      case OpType::kSlice: {
        const auto& a = n.attr<engine::SliceAttrs>();
        onnx::NodeProto* s =
            Add("Slice", {To4D(in(0)).name, Ints({a.begin}), Ints({a.end}), Ints({1})});
        y = Tensor{Out(s), 4};
        break;
      }
      default:
        return absl::UnimplementedError(
            absl::StrCat("cannot export op ", std::string(engine::OpTypeName(n.type))));
    }
    tensors_[n.output] = y;
    return absl::OkStatus();
  }

  const Graph& g_;
  const OnnxExportOptions& opts_;
  onnx::GraphProto* gp_ = nullptr;
  std::unordered_map<ValueId, Tensor> tensors_;
  std::unordered_map<std::string, int> init_names_;
  int64_t counter_ = 0;
};

}  // namespace

absl::StatusOr<std::string> ExportOnnx(const engine::Graph& graph, const OnnxExportOptions& opts) {
  if (absl::Status s = graph.Validate(); !s.ok()) return s;
  return Exporter(graph, opts).Run();
}

absl::Status ExportOnnxFile(const engine::Graph& graph, const std::string& path,
                            const OnnxExportOptions& opts) {
  absl::StatusOr<std::string> bytes = ExportOnnx(graph, opts);
  if (!bytes.ok()) return bytes.status();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f || !f.write(bytes->data(), static_cast<std::streamsize>(bytes->size())) || !f.flush()) {
    return absl::PermissionDeniedError(absl::StrCat("cannot write '", path, "'"));
  }
  return absl::OkStatus();
}

}  // namespace visionserve::models
