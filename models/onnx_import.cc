// ONNX → engine graph. See models/onnx.h for what is supported and why layouts are tracked
// rather than transposed.

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/passes.h"
#include "engine/reference.h"
#include "models/onnx.h"
#include "models/onnx_eval.h"
#include "models/onnx_util.h"
#include "onnx.pb.h"

namespace visionserve::models {

namespace {

using engine::Activation;
using engine::Dims;
using engine::Graph;
using engine::OpType;
using engine::ValueId;
using internal::Const;
using internal::ConstPtr;

constexpr int64_t kMinOpset = 11;
constexpr int64_t kMaxOpset = 18;

// A feature map flowing through the graph: an engine value plus the logical ONNX layout.
// Physical axes are the engine's [N, H, W, C]; phys[i] is the physical axis of logical axis i.
// A freshly imported NCHW tensor has phys {0, 3, 1, 2}; after Transpose(0, 2, 3, 1) it is
// {0, 1, 2, 3}. A [N, C] tensor (after Flatten of a 1×1 map) has rank 2 and phys {0, 3}.
struct Act {
  ValueId v = engine::kNoValue;
  int rank = 4;
  std::array<int, 4> phys{0, 3, 1, 2};

  bool IsNchw() const { return rank == 4 && phys == std::array<int, 4>{0, 3, 1, 2}; }
  // Index of the logical axis holding channels.
  int ChannelAxis() const {
    for (int i = 0; i < rank; ++i) {
      if (phys[i] == 3) return i;
    }
    return -1;
  }
};

// A tensor the engine does not compute op by op: the decode tail of a detector (YOLOv8's
// Reshape/Split/DFL/dist2bbox/Sigmoid/Concat after the head convs). It is evaluated on sample
// head maps as the graph is read; at the output it must equal the engine's DetectDecode on
// the same samples, which then replaces the whole tail.
struct Deferred {
  ConstPtr sample;
};

using Sym = std::variant<ConstPtr, Act, Deferred>;

enum class PatternKind { kNone, kSkip, kSiLU, kHardSwish, kGelu, kLayerNorm };

// A decomposed subgraph recognised before translation: its last node emits the fused op from
// `x`; the other nodes are skipped.
struct Pattern {
  PatternKind kind = PatternKind::kNone;
  std::string x;
  std::string gamma, beta;  // LayerNorm affine (may be empty)
  float eps = 1e-5f;
  int64_t axis = -1;
};

std::string Shape(const std::vector<int64_t>& s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

bool Near(double a, double b, double tol) {
  return std::fabs(a - b) <= tol * std::max(1.0, std::fabs(b));
}

class Importer {
 public:
  Importer(const onnx::ModelProto& model, const OnnxImportOptions& opts, OnnxModelInfo* info)
      : model_(model), g_proto_(model.graph()), opts_(opts), info_(info) {}

  absl::StatusOr<Graph> Run() {
    if (absl::Status s = CheckModel(); !s.ok()) return s;
    if (absl::Status s = LoadInitializers(); !s.ok()) return s;
    if (absl::Status s = BindInput(); !s.ok()) return s;
    if (absl::Status s = IndexNodes(); !s.ok()) return s;
    FindPatterns();
    for (int i = 0; i < g_proto_.node_size(); ++i) {
      if (absl::Status s = Translate(i); !s.ok()) return s;
    }
    if (absl::Status s = BindOutput(); !s.ok()) return s;
    if (absl::Status s = g_.Validate(); !s.ok()) {
      return absl::InternalError(absl::StrCat("imported graph is invalid: ", s.message()));
    }
    return std::move(g_);
  }

 private:
  // ---- errors ----
  absl::Status NodeError(int i, absl::string_view msg,
                         absl::StatusCode code = absl::StatusCode::kInvalidArgument) const {
    const onnx::NodeProto& n = g_proto_.node(i);
    return absl::Status(
        code, absl::StrCat("ONNX node #", i, " '", n.name(), "' (", n.op_type(), "): ", msg));
  }

  // ---- model-level checks ----
  absl::Status CheckModel() {
    if (!model_.has_graph() || model_.ir_version() <= 0 || model_.opset_import_size() == 0) {
      return absl::InvalidArgumentError(
          "not an ONNX model: no graph, IR version or opset import (truncated or another format?)");
    }
    info_->ir_version = model_.ir_version();
    info_->producer = absl::StrCat(model_.producer_name(), " ", model_.producer_version());
    int64_t opset = -1;
    for (const onnx::OperatorSetIdProto& o : model_.opset_import()) {
      if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
    }
    if (opset < 0) {
      return absl::InvalidArgumentError("the model imports no opset of the default ONNX domain");
    }
    if (opset < kMinOpset || opset > kMaxOpset) {
      return absl::InvalidArgumentError(absl::StrCat(
          "opset ", opset, " is not supported (supported: ", kMinOpset, "–", kMaxOpset, ")"));
    }
    opset_ = opset;
    info_->opset = opset;
    if (g_proto_.node_size() > opts_.limits.max_nodes) {
      return absl::ResourceExhaustedError(absl::StrCat("the graph has ", g_proto_.node_size(),
                                                       " nodes, more than the limit of ",
                                                       opts_.limits.max_nodes));
    }
    if (g_proto_.node_size() == 0) return absl::InvalidArgumentError("the graph has no nodes");
    info_->onnx_nodes = g_proto_.node_size();
    return absl::OkStatus();
  }

  absl::Status LoadInitializers() {
    for (const onnx::TensorProto& t : g_proto_.initializer()) {
      absl::StatusOr<ConstPtr> c = internal::ReadTensor(t, opts_.limits.max_tensor_bytes);
      if (!c.ok()) return c.status();
      syms_[t.name()] = *std::move(c);
      initializer_names_.insert(t.name());
    }
    if (g_proto_.sparse_initializer_size() > 0) {
      return absl::UnimplementedError("sparse initializers are not supported");
    }
    return absl::OkStatus();
  }

  absl::Status BindInput() {
    const onnx::ValueInfoProto* input = nullptr;
    for (const onnx::ValueInfoProto& vi : g_proto_.input()) {
      if (initializer_names_.contains(vi.name())) continue;  // IR < 4 lists initializers too
      if (input != nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("the graph has several inputs ('",
                                                       input->name(), "', '", vi.name(),
                                                       "'); a classifier has one"));
      }
      input = &vi;
    }
    if (input == nullptr) return absl::InvalidArgumentError("the graph has no input");
    const std::string& name = input->name();
    if (!input->type().has_tensor_type()) {
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "' is not a tensor"));
    }
    const onnx::TypeProto_Tensor& tt = input->type().tensor_type();
    if (tt.elem_type() != onnx::TensorProto::FLOAT) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", name, "' has element type ", tt.elem_type(), "; only float32 is supported"));
    }
    if (!tt.has_shape() || tt.shape().dim_size() != 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", name, "' must be a 4-D NCHW image tensor [N, C, H, W]; it has ",
          tt.has_shape() ? absl::StrCat(tt.shape().dim_size(), " dimensions") : "no shape"));
    }
    auto dim = [&](int i) -> const onnx::TensorShapeProto_Dimension& { return tt.shape().dim(i); };
    if (!dim(1).has_dim_value() || dim(1).dim_value() < 1 || dim(1).dim_value() > 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "' needs a fixed channel count of 1–4 (dimension 1 is ",
                       dim(1).has_dim_value() ? std::to_string(dim(1).dim_value())
                                              : "'" + dim(1).dim_param() + "'",
                       ")"));
    }
    int64_t hw[2];
    for (int i = 0; i < 2; ++i) {
      const auto& d = dim(2 + i);
      if (d.has_dim_value() && d.dim_value() > 0) {
        hw[i] = d.dim_value();
        if (opts_.input_size > 0 && hw[i] != opts_.input_size) {
          return absl::InvalidArgumentError(
              absl::StrCat("input '", name, "' is fixed at ", dim(2).dim_value(), "×",
                           dim(3).dim_value(), "; it cannot run at ", opts_.input_size));
        }
      } else if (opts_.input_size > 0) {
        hw[i] = opts_.input_size;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", name, "' has a symbolic ", i == 0 ? "height" : "width", " ('",
                         d.dim_param(), "'): the engine plans fixed shapes; give an input size"));
      }
    }
    if (hw[0] > 4096 || hw[1] > 4096) {
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "' is ", hw[0], "×", hw[1],
                                                     "; at most 4096×4096 is supported"));
    }
    const Dims dims{hw[0], hw[1], dim(1).dim_value()};
    Act a;
    a.v = g_.Input("input", dims);
    syms_[name] = a;
    info_->input_name = name;
    info_->height = dims.h;
    info_->width = dims.w;
    info_->channels = dims.c;
    return absl::OkStatus();
  }

  // Producers, consumers, Constant nodes and Identity-of-constant aliases.
  absl::Status IndexNodes() {
    for (const onnx::ValueInfoProto& o : g_proto_.output()) graph_outputs_.insert(o.name());
    for (int i = 0; i < g_proto_.node_size(); ++i) {
      const onnx::NodeProto& n = g_proto_.node(i);
      if (!n.domain().empty() && n.domain() != "ai.onnx") {
        return NodeError(i, absl::StrCat("op domain '", n.domain(), "' is not supported"),
                         absl::StatusCode::kUnimplemented);
      }
      for (const std::string& in : n.input()) {
        if (!in.empty()) consumers_[in].push_back(i);
      }
      for (const std::string& out : n.output()) {
        if (!out.empty()) producer_[out] = i;
      }
      if (n.op_type() == "Constant") {
        absl::StatusOr<ConstPtr> c = internal::ReadConstantNode(n, opts_.limits.max_tensor_bytes);
        if (!c.ok()) return NodeError(i, c.status().message(), c.status().code());
        if (n.output_size() != 1) return NodeError(i, "expected one output");
        syms_[n.output(0)] = *std::move(c);
      } else if ((n.op_type() == "Identity" || n.op_type() == "Dropout") && n.input_size() >= 1 &&
                 n.output_size() >= 1 && ConstOf(n.input(0)) != nullptr) {
        syms_[n.output(0)] = syms_[n.input(0)];
      }
    }
    return absl::OkStatus();
  }

  // ---- lookups used by patterns ----
  const Const* ConstOf(const std::string& name) const {
    auto it = syms_.find(name);
    if (it == syms_.end()) return nullptr;
    const ConstPtr* c = std::get_if<ConstPtr>(&it->second);
    return c ? c->get() : nullptr;
  }
  const onnx::NodeProto* ProducerNode(const std::string& name, int* index = nullptr) const {
    auto it = producer_.find(name);
    if (it == producer_.end()) return nullptr;
    if (index) *index = it->second;
    return &g_proto_.node(it->second);
  }
  const std::vector<int>& Consumers(const std::string& name) const {
    static const std::vector<int> kNone;
    auto it = consumers_.find(name);
    return it == consumers_.end() ? kNone : it->second;
  }
  // The single node consuming `name` (which is not a graph output), or -1.
  int SoleConsumer(const std::string& name) const {
    const std::vector<int>& c = Consumers(name);
    if (c.size() != 1 || graph_outputs_.contains(name)) return -1;
    return c[0];
  }
  bool IsOp(int i, std::string_view type) const {
    return i >= 0 && g_proto_.node(i).op_type() == type;
  }
  bool ScalarConstNear(const std::string& name, double v, double tol) const {
    const Const* c = ConstOf(name);
    return c != nullptr && c->numel() == 1 && Near(c->At(0), v, tol);
  }
  // For a binary node with `known` as one input: the other input's name, or "".
  std::string OtherInput(int i, const std::string& known) const {
    const onnx::NodeProto& n = g_proto_.node(i);
    if (n.input_size() != 2) return "";
    if (n.input(0) == known) return n.input(1);
    if (n.input(1) == known) return n.input(0);
    return "";
  }
  // The reduction axes of a ReduceMean (attribute before opset 18, input from 18).
  std::optional<std::vector<int64_t>> ReduceAxes(const onnx::NodeProto& n) const {
    if (const onnx::AttributeProto* a = internal::FindAttr(n, "axes")) {
      return std::vector<int64_t>(a->ints().begin(), a->ints().end());
    }
    if (n.input_size() >= 2 && !n.input(1).empty()) {
      const Const* c = ConstOf(n.input(1));
      if (c == nullptr) return std::nullopt;
      std::vector<int64_t> axes;
      for (int64_t k = 0; k < c->numel(); ++k) axes.push_back(c->IntAt(k));
      return axes;
    }
    return std::vector<int64_t>{};  // all axes
  }
  bool KeepDims(const onnx::NodeProto& n) const {
    const onnx::AttributeProto* a = internal::FindAttr(n, "keepdims");
    return a == nullptr || a->i() != 0;
  }

  // ---- pattern recognition ----
  void FindPatterns() {
    pattern_.assign(g_proto_.node_size(), Pattern{});
    for (int i = 0; i < g_proto_.node_size(); ++i) {
      const std::string& op = g_proto_.node(i).op_type();
      if (op == "Sigmoid" || op == "HardSigmoid") MatchGatedSelf(i);
      if (op == "Erf") MatchGelu(i);
      if (op == "ReduceMean") MatchLayerNorm(i);
    }
  }

  // x * Sigmoid(x) → SiLU, x * HardSigmoid(x) → hard-swish.
  void MatchGatedSelf(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    if (n.input_size() != 1 || n.output_size() != 1) return;
    if (n.op_type() == "HardSigmoid" && !IsTorchHardSigmoid(n)) return;
    const std::string& x = n.input(0);
    const int mul = SoleConsumer(n.output(0));
    if (!IsOp(mul, "Mul") || OtherInput(mul, n.output(0)) != x) return;
    pattern_[i].kind = PatternKind::kSkip;
    pattern_[mul].kind = n.op_type() == "Sigmoid" ? PatternKind::kSiLU : PatternKind::kHardSwish;
    pattern_[mul].x = x;
  }

  static bool IsTorchHardSigmoid(const onnx::NodeProto& n) {
    const onnx::AttributeProto* alpha = internal::FindAttr(n, "alpha");
    const onnx::AttributeProto* beta = internal::FindAttr(n, "beta");
    return alpha != nullptr && Near(alpha->f(), 1.0 / 6.0, 1e-5) &&
           (beta == nullptr || Near(beta->f(), 0.5, 1e-6));
  }

  // torch's exact GELU: Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5), or with the 0.5 applied to x
  // first: Mul(Mul(x, 0.5), Add(Erf(...), 1)).
  void MatchGelu(int erf) {
    const onnx::NodeProto& e = g_proto_.node(erf);
    if (e.input_size() != 1 || e.output_size() != 1) return;
    int scale_i = -1;
    const onnx::NodeProto* scale = ProducerNode(e.input(0), &scale_i);
    if (scale == nullptr || scale->input_size() != 2 || SoleConsumer(e.input(0)) != erf) return;
    const std::string x = scale->input(0);
    const bool div = scale->op_type() == "Div" && ScalarConstNear(scale->input(1), M_SQRT2, 1e-5);
    const bool mul = scale->op_type() == "Mul" && ScalarConstNear(scale->input(1), M_SQRT1_2, 1e-5);
    if (!div && !mul) return;
    const int add = SoleConsumer(e.output(0));
    if (!IsOp(add, "Add") || !ScalarConstNear(OtherInput(add, e.output(0)), 1.0, 1e-6)) return;
    const std::string& one_plus = g_proto_.node(add).output(0);
    const int m1 = SoleConsumer(one_plus);
    if (!IsOp(m1, "Mul")) return;
    const std::string other = OtherInput(m1, one_plus);
    int last = -1;
    std::vector<int> skip = {scale_i, erf, add};
    if (other == x) {  // Mul(x, 1 + erf) then Mul(·, 0.5)
      const int m2 = SoleConsumer(g_proto_.node(m1).output(0));
      if (!IsOp(m2, "Mul") ||
          !ScalarConstNear(OtherInput(m2, g_proto_.node(m1).output(0)), 0.5, 1e-6)) {
        return;
      }
      skip.push_back(m1);
      last = m2;
    } else {  // Mul(Mul(x, 0.5), 1 + erf)
      int half_i = -1;
      const onnx::NodeProto* half = ProducerNode(other, &half_i);
      if (half == nullptr || half->op_type() != "Mul" || SoleConsumer(other) != m1 ||
          OtherInput(half_i, x).empty() || !ScalarConstNear(OtherInput(half_i, x), 0.5, 1e-6)) {
        return;
      }
      skip.push_back(half_i);
      last = m1;
    }
    for (int s : skip) pattern_[s].kind = PatternKind::kSkip;
    pattern_[last].kind = PatternKind::kGelu;
    pattern_[last].x = x;
  }

  // LayerNorm over the last axis as torch < opset 17 exports it:
  //   m = ReduceMean(x, [-1]); d = Sub(x, m); v = ReduceMean(Pow(d, 2), [-1]);
  //   y = Div(d, Sqrt(Add(v, eps))) [; y = Mul(y, gamma)] [; y = Add(y, beta)]
  void MatchLayerNorm(int r1) {
    const onnx::NodeProto& mean = g_proto_.node(r1);
    std::optional<std::vector<int64_t>> axes = ReduceAxes(mean);
    if (!axes || axes->size() != 1 || !KeepDims(mean)) return;
    const std::string& x = mean.input(0);
    const int sub = SoleConsumer(mean.output(0));
    if (!IsOp(sub, "Sub") || g_proto_.node(sub).input(0) != x) return;
    const std::string& d = g_proto_.node(sub).output(0);
    const std::vector<int>& uses = Consumers(d);
    if (uses.size() != 2 || graph_outputs_.contains(d)) return;
    int pow = -1, div = -1;
    for (int u : uses) {
      const onnx::NodeProto& n = g_proto_.node(u);
      if (n.op_type() == "Pow" && n.input(0) == d && ScalarConstNear(n.input(1), 2.0, 0)) pow = u;
      if (n.op_type() == "Mul" && n.input_size() == 2 && n.input(0) == d && n.input(1) == d)
        pow = u;
      if (n.op_type() == "Div" && n.input(0) == d) div = u;
    }
    if (pow < 0 || div < 0) return;
    const int r2 = SoleConsumer(g_proto_.node(pow).output(0));
    if (!IsOp(r2, "ReduceMean") || ReduceAxes(g_proto_.node(r2)) != axes ||
        !KeepDims(g_proto_.node(r2))) {
      return;
    }
    const std::string& var = g_proto_.node(r2).output(0);
    const int add = SoleConsumer(var);
    if (!IsOp(add, "Add")) return;
    const Const* eps = ConstOf(OtherInput(add, var));
    if (eps == nullptr || eps->numel() != 1) return;
    const int sqrt = SoleConsumer(g_proto_.node(add).output(0));
    if (!IsOp(sqrt, "Sqrt") || SoleConsumer(g_proto_.node(sqrt).output(0)) != div ||
        g_proto_.node(div).input(1) != g_proto_.node(sqrt).output(0)) {
      return;
    }
    Pattern p;
    p.kind = PatternKind::kLayerNorm;
    p.x = x;
    p.eps = static_cast<float>(eps->At(0));
    p.axis = (*axes)[0];
    std::vector<int> skip = {r1, sub, pow, r2, add, sqrt};
    int last = div;
    const std::string* y = &g_proto_.node(div).output(0);
    if (int m = SoleConsumer(*y); IsOp(m, "Mul") && ConstOf(OtherInput(m, *y)) != nullptr) {
      p.gamma = OtherInput(m, *y);
      skip.push_back(last);
      last = m;
      y = &g_proto_.node(m).output(0);
    }
    if (int a = SoleConsumer(*y); IsOp(a, "Add") && ConstOf(OtherInput(a, *y)) != nullptr) {
      p.beta = OtherInput(a, *y);
      skip.push_back(last);
      last = a;
    }
    for (int s : skip) pattern_[s].kind = PatternKind::kSkip;
    pattern_[last] = p;
  }

  // ---- operand access during translation ----
  absl::StatusOr<Act> ActIn(int i, int k) const {
    const onnx::NodeProto& n = g_proto_.node(i);
    if (k >= n.input_size() || n.input(k).empty()) {
      return NodeError(i, absl::StrCat("missing input ", k));
    }
    return ActNamed(i, n.input(k));
  }
  absl::StatusOr<Act> ActNamed(int i, const std::string& name) const {
    auto it = syms_.find(name);
    if (it == syms_.end()) return MissingInput(i, name);
    if (const Act* a = std::get_if<Act>(&it->second)) return *a;
    return NodeError(i,
                     absl::StrCat("input '", name,
                                  "' is a constant where a feature map is expected; constant "
                                  "subgraphs are not supported here"),
                     absl::StatusCode::kUnimplemented);
  }
  absl::Status MissingInput(int i, const std::string& name) const {
    if (producer_.contains(name)) {
      return NodeError(
          i, absl::StrCat("input '", name,
                          "' is produced by a later node (the graph is not topologically sorted)"));
    }
    return NodeError(i, absl::StrCat("input '", name,
                                     "' is neither a graph input, an initializer nor a node output "
                                     "(missing initializer?)"));
  }
  // A float constant input (initializer or Constant node); `what` names it in errors.
  absl::StatusOr<const Const*> ConstIn(int i, int k, const std::string& what) const {
    const onnx::NodeProto& n = g_proto_.node(i);
    if (k >= n.input_size() || n.input(k).empty()) {
      return NodeError(i, absl::StrCat("missing ", what, " (input ", k, ")"));
    }
    const std::string& name = n.input(k);
    auto it = syms_.find(name);
    if (it == syms_.end()) return MissingInput(i, name);
    const ConstPtr* c = std::get_if<ConstPtr>(&it->second);
    if (c == nullptr) {
      return NodeError(i,
                       absl::StrCat(what, " '", name,
                                    "' is computed by the graph; it must be an initializer or "
                                    "a Constant"),
                       absl::StatusCode::kUnimplemented);
    }
    if ((*c)->is_int) {
      return NodeError(i,
                       absl::StrCat(what, " '", name, "' has integer type ",
                                    internal::DataTypeName((*c)->data_type), "; expected float"));
    }
    return c->get();
  }
  Dims DimsOf(const Act& a) const { return g_.value(a.v).dims; }
  // Logical shape with -1 for the batch.
  std::vector<int64_t> LogicalShape(const Act& a) const {
    const Dims d = DimsOf(a);
    const int64_t phys_size[4] = {-1, d.h, d.w, d.c};
    std::vector<int64_t> s;
    for (int i = 0; i < a.rank; ++i) s.push_back(phys_size[a.phys[i]]);
    return s;
  }
  // The values of `c` broadcast to a per-channel vector of `a` (c may be a scalar or have size C
  // on a's channel axis and 1 elsewhere), or nullopt.
  std::optional<std::vector<float>> PerChannel(const Act& a, const Const& c) const {
    const int64_t channels = DimsOf(a).c;
    if (c.numel() == 1) return std::vector<float>(channels, static_cast<float>(c.At(0)));
    if (static_cast<int>(c.shape.size()) > a.rank) return std::nullopt;
    const int offset = a.rank - static_cast<int>(c.shape.size());
    const std::vector<int64_t> logical = LogicalShape(a);
    for (size_t k = 0; k < c.shape.size(); ++k) {
      const int axis = offset + static_cast<int>(k);
      if (c.shape[k] == 1) continue;
      if (a.phys[axis] != 3 || c.shape[k] != channels) return std::nullopt;
    }
    std::vector<float> v(channels);
    for (int64_t k = 0; k < channels; ++k) v[k] = static_cast<float>(c.At(k));
    return v;
  }
  std::string Prefix(int i, const std::string& weight_name) const {
    if (absl::EndsWith(weight_name, ".weight")) {
      return weight_name.substr(0, weight_name.size() - 7);
    }
    const onnx::NodeProto& n = g_proto_.node(i);
    return n.name().empty() ? absl::StrCat(n.op_type(), "_", i) : n.name();
  }
  void Bind(int i, const Act& a) { syms_[g_proto_.node(i).output(0)] = a; }
  Act With(const Act& like, ValueId v) const {
    Act a = like;
    a.v = v;
    return a;
  }
  std::vector<float>& ParamData(ValueId v, int k) {
    engine::Node& node = g_.mutable_node(g_.value(v).producer);
    return g_.mutable_param(node.params[k]).data;
  }

  // ---- translation ----
  absl::Status Translate(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    const std::string& op = n.op_type();
    const Pattern& p = pattern_[i];
    if (p.kind == PatternKind::kSkip) return absl::OkStatus();
    if (n.output_size() < 1) return NodeError(i, "node has no output");
    if (p.kind != PatternKind::kNone) return TranslatePattern(i, p);
    if (op == "Constant") return absl::OkStatus();  // indexed up front
    if ((op == "Identity" || op == "Dropout") && ConstOf(n.output(0)) != nullptr) {
      return absl::OkStatus();
    }
    if (absl::StatusOr<bool> done = Evaluate(i); !done.ok() || *done) {
      return done.ok() ? absl::OkStatus() : done.status();
    }
    if (op == "Split") return Split(i);
    for (int k = 1; k < n.output_size(); ++k) {
      if (!n.output(k).empty() && !Consumers(n.output(k)).empty()) {
        return NodeError(i,
                         absl::StrCat("output ", k, " ('", n.output(k),
                                      "') is used; only the first output of ", op, " is supported"),
                         absl::StatusCode::kUnimplemented);
      }
    }
    if (op == "Conv") return Conv(i);
    if (op == "BatchNormalization") return BatchNorm(i);
    if (op == "Relu" || op == "Sigmoid" || op == "HardSwish" || op == "HardSigmoid" ||
        op == "Clip") {
      return Activation(i);
    }
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") return Binary(i);
    if (op == "GlobalAveragePool") return GlobalAvgPool(i);
    if (op == "ReduceMean") return ReduceMean(i);
    if (op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze")
      return Reshape(i);
    if (op == "Gemm") return Gemm(i);
    if (op == "MatMul") return MatMul(i);
    if (op == "Transpose") return Transpose(i);
    if (op == "Identity" || op == "Dropout") {
      absl::StatusOr<Act> x = ActIn(i, 0);
      if (!x.ok()) return x.status();
      Bind(i, *x);
      return absl::OkStatus();
    }
    if (op == "MaxPool") return MaxPool(i);
    if (op == "Softmax") return Softmax(i);
    if (op == "LayerNormalization") return LayerNormalization(i);
    if (op == "Resize") return Resize(i);
    if (op == "Concat") return Concat(i);
    if (op == "Slice") return SliceChannels(i);
    return NodeError(i, absl::StrCat("op type '", op, "' is not supported"),
                     absl::StatusCode::kUnimplemented);
  }

  // ---- constant folding and deferred (decode-tail) evaluation ----

  // Evaluates node i when its inputs are all constants (constant folding: shape arithmetic)
  // or include a deferred tensor (a detector's decode tail); also Shape of a feature map and
  // the Reshape that flattens a head map into [N, C, H·W], where a decode tail starts. Returns
  // false when the node is for the engine to run.
  absl::StatusOr<bool> Evaluate(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    const std::string& op = n.op_type();
    bool any_act = false, any_deferred = false;
    std::vector<ConstPtr> in;
    for (const std::string& name : n.input()) {
      if (name.empty()) {
        in.push_back(nullptr);
        continue;
      }
      auto it = syms_.find(name);
      if (it == syms_.end()) return MissingInput(i, name);
      if (const ConstPtr* c = std::get_if<ConstPtr>(&it->second)) {
        in.push_back(*c);
      } else if (const Deferred* d = std::get_if<Deferred>(&it->second)) {
        in.push_back(d->sample);
        any_deferred = true;
      } else {
        in.push_back(nullptr);
        any_act = true;
      }
    }
    if (op == "Shape" && any_act && n.input_size() == 1) {
      // The static shape of a feature map, batch 1 (shape arithmetic never sees the batch the
      // engine runs).
      absl::StatusOr<Act> x = ActIn(i, 0);
      if (!x.ok()) return x.status();
      auto shaped = std::make_shared<Const>();
      shaped->shape = LogicalShape(*x);
      shaped->shape[0] = 1;
      in[0] = shaped;
      any_act = false;
    } else if (op == "Reshape" && any_act && !any_deferred && n.input_size() == 2 && in[1]) {
      absl::StatusOr<Act> x = ActIn(i, 0);
      if (!x.ok()) return x.status();
      const Dims d = DimsOf(*x);
      std::vector<int64_t> s;
      for (int64_t k = 0; k < in[1]->numel(); ++k) s.push_back(in[1]->IntAt(k));
      const bool flattens = x->IsNchw() && d.h * d.w > 1 && s.size() == 3 &&
                            (s[0] == 1 || s[0] == 0 || s[0] == -1) && s[1] == d.c &&
                            (s[2] == -1 || s[2] == d.h * d.w);
      if (!flattens) return false;  // the engine's Reshape decides
      in[0] = LevelSample(*x);
      any_act = false;
      any_deferred = true;
    }
    if (any_act) {
      if (any_deferred) {
        return NodeError(i,
                         "mixes feature maps with a detector's decode tail; only YOLOv8's decode "
                         "(per-level head maps flattened, concatenated, DFL box decode and class "
                         "sigmoid) is supported after the head",
                         absl::StatusCode::kUnimplemented);
      }
      return false;
    }
    if (!internal::CanEvaluate(op)) {
      if (any_deferred || op == "Constant") {
        return NodeError(i, absl::StrCat("op type '", op, "' is not supported here"),
                         absl::StatusCode::kUnimplemented);
      }
      return NodeError(i,
                       absl::StrCat("op type '", op,
                                    "' on constants is not supported (constant folding knows "
                                    "shape arithmetic and the detection decode ops)"),
                       absl::StatusCode::kUnimplemented);
    }
    absl::StatusOr<std::vector<ConstPtr>> out = internal::EvalNode(n, in, opset_);
    if (!out.ok()) return NodeError(i, out.status().message(), out.status().code());
    if (static_cast<int>(out->size()) < n.output_size()) {
      return NodeError(i, "evaluation gave fewer outputs than the node has",
                       absl::StatusCode::kInternal);
    }
    for (int k = 0; k < n.output_size(); ++k) {
      if (n.output(k).empty()) continue;
      if (any_deferred) {
        syms_[n.output(k)] = Deferred{(*out)[k]};
      } else {
        syms_[n.output(k)] = (*out)[k];
      }
    }
    return true;
  }

  // Sample data for a head map entering a decode tail: NCHW [1, C, H, W], uniform in [-4, 4],
  // seeded by its position so imports are reproducible.
  ConstPtr LevelSample(const Act& x) {
    for (const Level& l : levels_) {
      if (l.act.v == x.v) return l.sample;
    }
    const Dims d = DimsOf(x);
    auto c = std::make_shared<Const>();
    c->shape = {1, d.c, d.h, d.w};
    c->f.resize(d.c * d.h * d.w);
    std::mt19937 rng(static_cast<uint32_t>(levels_.size() + 1) * 7919u);
    std::uniform_real_distribution<float> u(-4.0f, 4.0f);
    for (float& v : c->f) v = u(rng);
    levels_.push_back(Level{x, c});
    return c;
  }

  // ---- channel slices ----

  // Split of a feature map along channels: one engine Slice per output.
  absl::Status Split(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    absl::StatusOr<int64_t> axis = internal::IntAttr(n, "axis", 0);
    if (!axis.ok()) return NodeError(i, axis.status().message());
    const int64_t ax = *axis < 0 ? *axis + x->rank : *axis;
    if (ax < 0 || ax >= x->rank || x->phys[ax] != 3) {
      return NodeError(i, "Split of a feature map is supported along channels only",
                       absl::StatusCode::kUnimplemented);
    }
    const int64_t c = DimsOf(*x).c;
    std::vector<int64_t> sizes;
    if (const onnx::AttributeProto* a = internal::FindAttr(n, "split")) {
      sizes.assign(a->ints().begin(), a->ints().end());
    } else if (n.input_size() > 1 && !n.input(1).empty()) {
      const Const* s = ConstOf(n.input(1));
      if (s == nullptr) return NodeError(i, "Split sizes must be constant");
      for (int64_t k = 0; k < s->numel(); ++k) sizes.push_back(s->IntAt(k));
    } else {
      const int64_t parts = n.output_size();
      const int64_t each = (c + parts - 1) / parts;
      for (int64_t k = 0; k < parts; ++k) sizes.push_back(std::min(each, c - each * k));
    }
    int64_t total = 0;
    for (int64_t v : sizes) total += v;
    if (static_cast<int>(sizes.size()) != n.output_size() || total != c) {
      return NodeError(i, absl::StrCat("split sizes ", Shape(sizes), " do not split ", c,
                                       " channels into ", n.output_size(), " outputs"));
    }
    int64_t begin = 0;
    for (int k = 0; k < n.output_size(); ++k) {
      if (sizes[k] <= 0) return NodeError(i, "empty split");
      if (!n.output(k).empty()) {
        syms_[n.output(k)] =
            With(*x, begin == 0 && sizes[k] == c ? x->v : g_.Slice(x->v, begin, begin + sizes[k]));
      }
      begin += sizes[k];
    }
    return absl::OkStatus();
  }

  // Slice of a feature map: a channel range with step 1 (torch's chunk() at opsets < 13).
  absl::Status SliceChannels(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    auto ints = [&](int k) -> std::optional<std::vector<int64_t>> {
      if (n.input_size() <= k || n.input(k).empty()) return std::vector<int64_t>{};
      const Const* c = ConstOf(n.input(k));
      if (c == nullptr) return std::nullopt;
      std::vector<int64_t> v;
      for (int64_t j = 0; j < c->numel(); ++j) v.push_back(c->IntAt(j));
      return v;
    };
    auto starts = ints(1), ends = ints(2), axes = ints(3), steps = ints(4);
    if (!starts || !ends || !axes || !steps || opset_ < 10) {
      return NodeError(i, "Slice needs constant starts, ends, axes and steps",
                       absl::StatusCode::kUnimplemented);
    }
    if (axes->empty()) {
      for (size_t k = 0; k < starts->size(); ++k) axes->push_back(static_cast<int64_t>(k));
    }
    const std::vector<int64_t> shape = LogicalShape(*x);
    int64_t begin = 0, end = DimsOf(*x).c;
    for (size_t k = 0; k < axes->size() && k < starts->size() && k < ends->size(); ++k) {
      const int64_t ax = (*axes)[k] < 0 ? (*axes)[k] + x->rank : (*axes)[k];
      const int64_t step = k < steps->size() ? (*steps)[k] : 1;
      if (ax < 0 || ax >= x->rank) return NodeError(i, "Slice axis out of range");
      const int64_t d = x->phys[ax] == 0 ? INT64_MAX : shape[ax];
      int64_t s = (*starts)[k] < 0 ? (*starts)[k] + d : (*starts)[k];
      int64_t e = (*ends)[k] < 0 ? (*ends)[k] + d : (*ends)[k];
      s = std::clamp<int64_t>(s, 0, d);
      e = std::clamp<int64_t>(e, 0, d);
      if (x->phys[ax] == 3 && step == 1) {
        begin = s;
        end = e;
      } else if (!(step == 1 && s == 0 && e == d)) {
        return NodeError(i, "Slice of a feature map is supported along channels only (step 1)",
                         absl::StatusCode::kUnimplemented);
      }
    }
    if (begin >= end) return NodeError(i, "Slice selects no channels");
    Bind(i, With(*x, begin == 0 && end == DimsOf(*x).c ? x->v : g_.Slice(x->v, begin, end)));
    return absl::OkStatus();
  }

  absl::Status TranslatePattern(int i, const Pattern& p) {
    absl::StatusOr<Act> x = ActNamed(i, p.x);
    if (!x.ok()) return x.status();
    switch (p.kind) {
      case PatternKind::kSiLU:
        Bind(i, With(*x, g_.Act(x->v, Activation::kSiLU)));
        return absl::OkStatus();
      case PatternKind::kHardSwish:
        Bind(i, With(*x, g_.Act(x->v, Activation::kHardSwish)));
        return absl::OkStatus();
      case PatternKind::kGelu:
        Bind(i, With(*x, g_.Act(x->v, Activation::kGELU)));
        return absl::OkStatus();
      case PatternKind::kLayerNorm: {
        const Const* gamma = p.gamma.empty() ? nullptr : ConstOf(p.gamma);
        const Const* beta = p.beta.empty() ? nullptr : ConstOf(p.beta);
        return EmitLayerNorm(i, *x, p.axis, p.eps, gamma, beta, p.gamma);
      }
      default:
        return NodeError(i, "internal: unexpected pattern", absl::StatusCode::kInternal);
    }
  }

  absl::Status EmitLayerNorm(int i, const Act& x, int64_t axis, float eps, const Const* gamma,
                             const Const* beta, const std::string& gamma_name) {
    if (axis < 0) axis += x.rank;
    if (axis != x.rank - 1 || x.phys[axis] != 3) {
      return NodeError(i,
                       "LayerNorm is supported over the channel axis only (the last axis after "
                       "an NCHW→NHWC Transpose)",
                       absl::StatusCode::kUnimplemented);
    }
    const int64_t c = DimsOf(x).c;
    std::vector<float> gv(c, 1.0f), bv(c, 0.0f);
    if (gamma != nullptr) {
      if (gamma->numel() != c)
        return NodeError(i, absl::StrCat("LayerNorm scale has ", gamma->numel(), " values for ", c,
                                         " channels"));
      for (int64_t k = 0; k < c; ++k) gv[k] = static_cast<float>(gamma->At(k));
    }
    if (beta != nullptr) {
      if (beta->numel() != c)
        return NodeError(
            i, absl::StrCat("LayerNorm bias has ", beta->numel(), " values for ", c, " channels"));
      for (int64_t k = 0; k < c; ++k) bv[k] = static_cast<float>(beta->At(k));
    }
    if (!(eps >= 0.0f) || !std::isfinite(eps))
      return NodeError(i, "LayerNorm epsilon must be finite and ≥ 0");
    const ValueId y = g_.LayerNorm(x.v, Prefix(i, gamma_name), eps);
    ParamData(y, 0) = std::move(gv);
    ParamData(y, 1) = std::move(bv);
    Bind(i, With(x, y));
    return absl::OkStatus();
  }

  absl::Status Conv(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    if (!x->IsNchw())
      return NodeError(i, "Conv input must be in NCHW layout", absl::StatusCode::kUnimplemented);
    absl::StatusOr<const Const*> w = ConstIn(i, 1, "weight");
    if (!w.ok()) return w.status();
    const Const& W = **w;
    if (W.shape.size() != 4) {
      return NodeError(
          i,
          absl::StrCat("only 2-D convolutions are supported (weight shape ", Shape(W.shape), ")"),
          absl::StatusCode::kUnimplemented);
    }
    const Const* B = nullptr;
    if (n.input_size() > 2 && !n.input(2).empty()) {
      absl::StatusOr<const Const*> b = ConstIn(i, 2, "bias");
      if (!b.ok()) return b.status();
      B = *b;
    }
    const Dims in = DimsOf(*x);
    absl::StatusOr<int64_t> group = internal::IntAttr(n, "group", 1);
    if (!group.ok()) return NodeError(i, group.status().message());
    const int64_t out_c = W.shape[0];
    if (*group < 1 || in.c % *group != 0 || out_c % *group != 0 || W.shape[1] * *group != in.c) {
      return NodeError(i, absl::StrCat("weight ", Shape(W.shape), " with group ", *group,
                                       " does not fit ", in.c, " input channels"));
    }
    if (B != nullptr && B->numel() != out_c) {
      return NodeError(
          i, absl::StrCat("bias has ", B->numel(), " values for ", out_c, " output channels"));
    }
    engine::Conv2DAttrs a;
    a.out_channels = out_c;
    a.groups = *group;
    a.kernel_h = static_cast<int>(W.shape[2]);
    a.kernel_w = static_cast<int>(W.shape[3]);
    absl::Status s = internal::SpatialAttrs(
        n, a.kernel_h, a.kernel_w, in.h, in.w, /*allow_dilation=*/true, &a.stride_h, &a.stride_w,
        &a.dilation_h, &a.dilation_w, &a.pad_top, &a.pad_left, &a.pad_bottom, &a.pad_right);
    if (!s.ok()) return NodeError(i, s.message(), s.code());
    const ValueId y = g_.Conv2D(x->v, a, B != nullptr, Prefix(i, n.input(1)));
    ParamData(y, 0) = W.f;
    if (B != nullptr) ParamData(y, 1) = B->f;
    Bind(i, With(*x, y));
    return absl::OkStatus();
  }

  absl::Status BatchNorm(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    absl::StatusOr<int64_t> training = internal::IntAttr(n, "training_mode", 0);
    if (!training.ok() || *training != 0) return NodeError(i, "training_mode must be 0");
    const engine::Node* prod =
        g_.value(x->v).producer >= 0 ? &g_.node(g_.value(x->v).producer) : nullptr;
    if (prod == nullptr || prod->type != OpType::kConv2D || SoleConsumer(n.input(0)) != i ||
        !x->IsNchw()) {
      return NodeError(i,
                       "BatchNormalization is supported only directly after a Conv that has no "
                       "other consumer (it is folded into the Conv)",
                       absl::StatusCode::kUnimplemented);
    }
    const int64_t c = DimsOf(*x).c;
    const char* names[4] = {"scale", "bias", "mean", "var"};
    const Const* in[4];
    for (int k = 0; k < 4; ++k) {
      absl::StatusOr<const Const*> t = ConstIn(i, k + 1, names[k]);
      if (!t.ok()) return t.status();
      if ((*t)->numel() != c)
        return NodeError(
            i, absl::StrCat(names[k], " has ", (*t)->numel(), " values for ", c, " channels"));
      in[k] = *t;
    }
    absl::StatusOr<float> eps = internal::FloatAttr(n, "epsilon", 1e-5f);
    if (!eps.ok()) return NodeError(i, eps.status().message());
    const ValueId y = g_.BatchNorm(x->v, Prefix(i, n.input(1)), *eps);
    for (int k = 0; k < 4; ++k) ParamData(y, k) = in[k]->f;
    Bind(i, With(*x, y));
    return absl::OkStatus();
  }

  absl::Status Activation(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    engine::Activation act = Activation::kNone;
    const std::string& op = n.op_type();
    if (op == "Relu") act = Activation::kReLU;
    if (op == "Sigmoid") act = Activation::kSigmoid;
    if (op == "HardSwish") act = Activation::kHardSwish;
    if (op == "HardSigmoid") {
      if (!IsTorchHardSigmoid(n)) {
        return NodeError(i,
                         "HardSigmoid is supported with alpha = 1/6 and beta = 0.5 (torch's) only",
                         absl::StatusCode::kUnimplemented);
      }
      act = Activation::kHardSigmoid;
    }
    if (op == "Clip") {
      double lo = -INFINITY, hi = INFINITY;
      if (opset_ < 11) {
        lo = internal::FloatAttr(n, "min", -INFINITY).value_or(-INFINITY);
        hi = internal::FloatAttr(n, "max", INFINITY).value_or(INFINITY);
      } else {
        for (int k = 1; k <= 2; ++k) {
          if (n.input_size() <= k || n.input(k).empty()) continue;
          const Const* c = ConstOf(n.input(k));
          if (c == nullptr || c->numel() != 1)
            return NodeError(i, "Clip bounds must be scalar constants");
          (k == 1 ? lo : hi) = c->At(0);
        }
      }
      if (lo == 0 && hi == 6) {
        act = Activation::kReLU6;
      } else if (lo == 0 && std::isinf(hi)) {
        act = Activation::kReLU;
      } else {
        return NodeError(
            i, absl::StrCat("Clip(", lo, ", ", hi, ") is not supported (only [0, 6] and [0, inf))"),
            absl::StatusCode::kUnimplemented);
      }
    }
    Bind(i, With(*x, g_.Act(x->v, act)));
    return absl::OkStatus();
  }

  // Adds `bias` (per output channel) to the Conv/Linear producing x, when x has no other use.
  bool FoldBias(int i, const std::string& x_name, const Act& x, const std::vector<float>& bias) {
    const int32_t p = g_.value(x.v).producer;
    if (p < 0 || SoleConsumer(x_name) != i) return false;
    engine::Node& node = g_.mutable_node(p);
    if (node.type != OpType::kConv2D && node.type != OpType::kLinear) return false;
    if (node.params.size() < 2) {
      engine::Param b;
      b.name = absl::StrCat(node.name, ".bias");
      b.shape = {static_cast<int64_t>(bias.size())};
      b.role = engine::ParamRole::kBias;
      b.data.assign(bias.size(), 0.0f);
      const engine::ParamId id = g_.AddParam(std::move(b));
      g_.mutable_node(p).params.push_back(id);
    }
    std::vector<float>& data = g_.mutable_param(g_.node(p).params[1]).data;
    for (size_t k = 0; k < bias.size(); ++k) data[k] += bias[k];
    return true;
  }

  absl::Status Binary(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    const std::string& op = n.op_type();
    if (n.input_size() != 2) return NodeError(i, "expected two inputs");
    auto sym = [&](int k) -> const Sym* {
      auto it = syms_.find(n.input(k));
      return it == syms_.end() ? nullptr : &it->second;
    };
    for (int k = 0; k < 2; ++k) {
      if (sym(k) == nullptr) return MissingInput(i, n.input(k));
    }
    const Act* a0 = std::get_if<Act>(sym(0));
    const Act* a1 = std::get_if<Act>(sym(1));
    if (a0 == nullptr && a1 == nullptr) {  // Evaluate() folds arithmetic on constants
      return NodeError(i, "internal: constant arithmetic was not folded",
                       absl::StatusCode::kInternal);
    }
    if (a0 != nullptr && a1 != nullptr) {
      const Dims d0 = DimsOf(*a0), d1 = DimsOf(*a1);
      const bool same_layout = a0->rank == a1->rank && a0->phys == a1->phys;
      if (op == "Add" && same_layout && d0 == d1) {
        Bind(i, With(*a0, g_.Add(a0->v, a1->v)));
        return absl::OkStatus();
      }
      if (op == "Mul" && a0->rank == 4 && a1->rank == 4 && a0->ChannelAxis() == a1->ChannelAxis()) {
        // x * gate, the gate a per-image channel vector [N, C, 1, 1].
        const Act* x = a0;
        const Act* s = a1;
        if (DimsOf(*x).h == 1 && DimsOf(*x).w == 1 && !(d1.h == 1 && d1.w == 1)) std::swap(x, s);
        const Dims ds = DimsOf(*s);
        if (ds.h == 1 && ds.w == 1 && ds.c == DimsOf(*x).c &&
            !(DimsOf(*x).h == 1 && DimsOf(*x).w == 1)) {
          Bind(i, With(*x, g_.Mul(x->v, s->v)));
          return absl::OkStatus();
        }
      }
      return NodeError(i,
                       absl::StrCat(op, " of feature maps ", Shape(LogicalShape(*a0)), " and ",
                                    Shape(LogicalShape(*a1)),
                                    " is not supported (supported: Add of equal shapes, Mul by a "
                                    "per-channel [N, C, 1, 1] gate)"),
                       absl::StatusCode::kUnimplemented);
    }
    // One feature map, one constant.
    const bool act_first = a0 != nullptr;
    const Act& x = act_first ? *a0 : *a1;
    const std::string& x_name = n.input(act_first ? 0 : 1);
    const Const& c = *std::get<ConstPtr>(*sym(act_first ? 1 : 0));
    if (c.is_int)
      return NodeError(
          i, absl::StrCat("constant '", n.input(act_first ? 1 : 0), "' is an integer tensor"));
    std::optional<std::vector<float>> v = PerChannel(x, c);
    if (!v) {
      return NodeError(i,
                       absl::StrCat(op, " by a constant of shape ", Shape(c.shape),
                                    " is supported only per channel or as a scalar (feature "
                                    "map ",
                                    Shape(LogicalShape(x)), ")"),
                       absl::StatusCode::kUnimplemented);
    }
    if ((op == "Sub" || op == "Div") && !act_first) {
      return NodeError(i, absl::StrCat("constant ", op, " feature map is not supported"),
                       absl::StatusCode::kUnimplemented);
    }
    if (op == "Add" || op == "Sub") {
      if (op == "Sub") {
        for (float& f : *v) f = -f;
      }
      if (!FoldBias(i, x_name, x, *v)) {
        return NodeError(i,
                         absl::StrCat(op,
                                      " of a constant is supported only as the bias of the "
                                      "Conv, MatMul or Gemm producing its input, with no other "
                                      "consumer"),
                         absl::StatusCode::kUnimplemented);
      }
      Bind(i, x);
      return absl::OkStatus();
    }
    if (op == "Div") {
      for (float& f : *v) {
        if (f == 0.0f) return NodeError(i, "division by zero");
        f = 1.0f / f;
      }
    }
    const std::string name = act_first ? n.input(1) : n.input(0);
    const ValueId y =
        g_.ChannelScale(x.v, (name.empty() || producer_.contains(name)) ? Prefix(i, "") : name);
    ParamData(y, 0) = std::move(*v);
    Bind(i, With(x, y));
    return absl::OkStatus();
  }

  absl::Status GlobalAvgPool(int i) {
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    if (x->rank != 4 ||
        !((x->phys[2] == 1 && x->phys[3] == 2) || (x->phys[2] == 2 && x->phys[3] == 1))) {
      return NodeError(i, "GlobalAveragePool needs an NCHW feature map",
                       absl::StatusCode::kUnimplemented);
    }
    Bind(i, With(*x, g_.GlobalAvgPool(x->v)));
    return absl::OkStatus();
  }

  absl::Status ReduceMean(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    std::optional<std::vector<int64_t>> axes = ReduceAxes(n);
    std::vector<int> phys;
    if (axes) {
      for (int64_t a : *axes) {
        if (a < 0) a += x->rank;
        if (a < 0 || a >= x->rank) return NodeError(i, absl::StrCat("axis out of range"));
        phys.push_back(x->phys[a]);
      }
    }
    std::sort(phys.begin(), phys.end());
    if (phys != std::vector<int>{1, 2}) {
      return NodeError(i,
                       "ReduceMean is supported over the spatial axes only (or as part of a "
                       "LayerNorm pattern)",
                       absl::StatusCode::kUnimplemented);
    }
    Act y = With(*x, g_.GlobalAvgPool(x->v));
    if (!KeepDims(n)) {
      y.rank = 2;
      y.phys = {0, 3, 0, 0};
    }
    Bind(i, y);
    return absl::OkStatus();
  }

  // Flatten / Reshape / Squeeze / Unsqueeze between [N, C, 1, 1] and [N, C].
  absl::Status Reshape(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    const std::string& op = n.op_type();
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    const Dims d = DimsOf(*x);
    int target_rank = -1;
    if (op == "Flatten") {
      absl::StatusOr<int64_t> axis = internal::IntAttr(n, "axis", 1);
      if (!axis.ok() || *axis != 1)
        return NodeError(i, "Flatten is supported with axis 1 only",
                         absl::StatusCode::kUnimplemented);
      target_rank = 2;
    } else if (op == "Reshape") {
      const Const* shape = n.input_size() > 1 ? ConstOf(n.input(1)) : nullptr;
      if (shape == nullptr)
        return NodeError(i, "Reshape needs a constant shape", absl::StatusCode::kUnimplemented);
      std::vector<int64_t> s;
      for (int64_t k = 0; k < shape->numel(); ++k) s.push_back(shape->IntAt(k));
      const bool batch_ok = !s.empty() && (s[0] == -1 || s[0] == 0 || s[0] == 1);
      if (batch_ok && s.size() == 2 && (s[1] == d.c || s[1] == -1)) target_rank = 2;
      if (batch_ok && s.size() == 4 && (s[1] == d.c || s[1] == -1) && s[2] == 1 && s[3] == 1)
        target_rank = 4;
    } else {
      std::vector<int64_t> axes;
      if (const onnx::AttributeProto* a = internal::FindAttr(n, "axes")) {
        axes.assign(a->ints().begin(), a->ints().end());
      } else if (const Const* c = n.input_size() > 1 ? ConstOf(n.input(1)) : nullptr) {
        for (int64_t k = 0; k < c->numel(); ++k) axes.push_back(c->IntAt(k));
      }
      for (int64_t& a : axes) {
        if (a < 0) a += op == "Squeeze" ? x->rank : x->rank + static_cast<int64_t>(axes.size());
      }
      std::sort(axes.begin(), axes.end());
      if (op == "Squeeze" && x->rank == 4 && axes == std::vector<int64_t>{2, 3}) target_rank = 2;
      if (op == "Unsqueeze" && x->rank == 2 && axes == std::vector<int64_t>{2, 3}) target_rank = 4;
    }
    if (target_rank < 0 || d.h != 1 || d.w != 1) {
      return NodeError(i,
                       absl::StrCat(op, " of ", Shape(LogicalShape(*x)),
                                    " is supported only between [N, C, 1, 1] and [N, C]"),
                       absl::StatusCode::kUnimplemented);
    }
    Act y = *x;
    if (target_rank == 2) {
      y.rank = 2;
      y.phys = {0, 3, 0, 0};
    } else {
      y.rank = 4;
      y.phys = {0, 3, 1, 2};
    }
    Bind(i, y);
    return absl::OkStatus();
  }

  absl::Status Gemm(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    if (x->rank != 2) return NodeError(i, "Gemm input must be 2-D [N, K]");
    absl::StatusOr<const Const*> b = ConstIn(i, 1, "weight");
    if (!b.ok()) return b.status();
    const Const& B = **b;
    absl::StatusOr<int64_t> trans_a = internal::IntAttr(n, "transA", 0);
    absl::StatusOr<int64_t> trans_b = internal::IntAttr(n, "transB", 0);
    absl::StatusOr<float> alpha = internal::FloatAttr(n, "alpha", 1.0f);
    absl::StatusOr<float> beta = internal::FloatAttr(n, "beta", 1.0f);
    if (!trans_a.ok() || !trans_b.ok() || !alpha.ok() || !beta.ok())
      return NodeError(i, "malformed attributes");
    if (*trans_a != 0 || *alpha != 1.0f) {
      return NodeError(i,
                       absl::StrCat("Gemm with transA=", *trans_a, ", alpha=", *alpha,
                                    " is not supported (transA=0, alpha=1 only)"),
                       absl::StatusCode::kUnimplemented);
    }
    const int64_t k_in = DimsOf(*x).c;
    if (B.shape.size() != 2 || B.shape[*trans_b ? 1 : 0] != k_in) {
      return NodeError(i, absl::StrCat("weight ", Shape(B.shape), (*trans_b ? " (transB)" : ""),
                                       " does not fit ", k_in, " input features"));
    }
    const int64_t out = B.shape[*trans_b ? 0 : 1];
    const Const* C = nullptr;
    if (n.input_size() > 2 && !n.input(2).empty()) {
      absl::StatusOr<const Const*> c = ConstIn(i, 2, "bias");
      if (!c.ok()) return c.status();
      C = *c;
      if (!(C->numel() == out || C->numel() == 1) || (C->shape.size() == 2 && C->shape[0] != 1)) {
        return NodeError(
            i, absl::StrCat("bias ", Shape(C->shape), " does not broadcast to [N, ", out, "]"));
      }
    }
    const ValueId y = g_.Linear(x->v, out, C != nullptr, Prefix(i, n.input(1)));
    ParamData(y, 0) = *trans_b ? B.f : Transposed(B.f, k_in, out);
    if (C != nullptr) {
      std::vector<float> bias(out);
      for (int64_t k = 0; k < out; ++k)
        bias[k] = *beta * static_cast<float>(C->At(C->numel() == 1 ? 0 : k));
      ParamData(y, 1) = std::move(bias);
    }
    Bind(i, With(*x, y));
    return absl::OkStatus();
  }

  static std::vector<float> Transposed(const std::vector<float>& m, int64_t rows, int64_t cols) {
    std::vector<float> t(m.size());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = m[r * cols + c];
    }
    return t;
  }

  // MatMul(x, B[K, N]) over the last axis: a Linear for [N, K] inputs, a 1×1 conv for feature
  // maps whose last (logical) axis is channels — ConvNeXt's block linears.
  absl::Status MatMul(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    absl::StatusOr<const Const*> b = ConstIn(i, 1, "weight");
    if (!b.ok()) return b.status();
    const Const& B = **b;
    const int64_t k_in = DimsOf(*x).c;
    if (x->phys[x->rank - 1] != 3) {
      return NodeError(i, "MatMul is supported over the channel axis only",
                       absl::StatusCode::kUnimplemented);
    }
    if (B.shape.size() != 2 || B.shape[0] != k_in) {
      return NodeError(
          i, absl::StrCat("weight ", Shape(B.shape), " does not fit ", k_in, " input features"));
    }
    const int64_t out = B.shape[1];
    ValueId y;
    if (x->rank == 2) {
      y = g_.Linear(x->v, out, false, Prefix(i, n.input(1)));
    } else {
      engine::Conv2DAttrs a;
      a.out_channels = out;
      y = g_.Conv2D(x->v, a, false, Prefix(i, n.input(1)));
    }
    ParamData(y, 0) = Transposed(B.f, k_in, out);
    Bind(i, With(*x, y));
    return absl::OkStatus();
  }

  absl::Status Transpose(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    std::vector<int64_t> perm;
    if (const onnx::AttributeProto* a = internal::FindAttr(n, "perm")) {
      perm.assign(a->ints().begin(), a->ints().end());
    } else {
      for (int k = x->rank - 1; k >= 0; --k) perm.push_back(k);
    }
    std::vector<int64_t> sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    for (int k = 0; k < static_cast<int>(sorted.size()); ++k) {
      if (sorted[k] != k) sorted.clear();
    }
    if (static_cast<int>(perm.size()) != x->rank || sorted.empty() || perm[0] != 0) {
      return NodeError(i,
                       absl::StrCat("perm ", Shape(perm),
                                    " is not supported (a permutation of the "
                                    "non-batch axes is required)"),
                       absl::StatusCode::kUnimplemented);
    }
    Act y = *x;
    for (int k = 0; k < x->rank; ++k) y.phys[k] = x->phys[perm[k]];
    Bind(i, y);
    return absl::OkStatus();
  }

  absl::Status MaxPool(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    if (!x->IsNchw())
      return NodeError(i, "MaxPool input must be in NCHW layout", absl::StatusCode::kUnimplemented);
    const onnx::AttributeProto* ks = internal::FindAttr(n, "kernel_shape");
    if (ks == nullptr || ks->ints_size() != 2)
      return NodeError(i, "MaxPool needs a 2-D kernel_shape");
    absl::StatusOr<int64_t> ceil = internal::IntAttr(n, "ceil_mode", 0);
    absl::StatusOr<int64_t> order = internal::IntAttr(n, "storage_order", 0);
    if (!ceil.ok() || *ceil != 0 || !order.ok() || *order != 0) {
      return NodeError(i, "MaxPool with ceil_mode or storage_order set is not supported",
                       absl::StatusCode::kUnimplemented);
    }
    engine::MaxPoolAttrs a;
    a.kernel_h = static_cast<int>(ks->ints(0));
    a.kernel_w = static_cast<int>(ks->ints(1));
    int dil_h = 1, dil_w = 1;
    const Dims in = DimsOf(*x);
    absl::Status s = internal::SpatialAttrs(
        n, a.kernel_h, a.kernel_w, in.h, in.w, /*allow_dilation=*/false, &a.stride_h, &a.stride_w,
        &dil_h, &dil_w, &a.pad_top, &a.pad_left, &a.pad_bottom, &a.pad_right);
    if (!s.ok()) return NodeError(i, s.message(), s.code());
    if (a.pad_top >= a.kernel_h || a.pad_bottom >= a.kernel_h || a.pad_left >= a.kernel_w ||
        a.pad_right >= a.kernel_w) {
      return NodeError(i, "MaxPool padding must be smaller than the kernel");
    }
    Bind(i, With(*x, g_.MaxPool(x->v, a)));
    return absl::OkStatus();
  }

  absl::Status Softmax(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    absl::StatusOr<int64_t> axis = internal::IntAttr(n, "axis", opset_ >= 13 ? -1 : 1);
    if (!axis.ok() || x->rank != 2 || !(*axis == -1 || *axis == 1)) {
      return NodeError(i, "Softmax is supported over the class axis of [N, classes] only",
                       absl::StatusCode::kUnimplemented);
    }
    Bind(i, With(*x, g_.Softmax(x->v)));
    return absl::OkStatus();
  }

  // Nearest-neighbour Resize by integer factors (torch's nn.Upsample(mode="nearest")), for
  // coordinate modes where that is exactly out[y] = in[y / f].
  absl::Status Resize(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    if (!x->IsNchw())
      return NodeError(i, "Resize input must be in NCHW layout", absl::StatusCode::kUnimplemented);
    auto str = [&](const char* name, const char* dflt) {
      const onnx::AttributeProto* a = internal::FindAttr(n, name);
      return a == nullptr ? std::string(dflt) : a->s();
    };
    const std::string mode = str("mode", "nearest");
    const std::string coord = str("coordinate_transformation_mode", "half_pixel");
    const std::string nearest = str("nearest_mode", "round_prefer_floor");
    const bool exact = (coord == "asymmetric" && nearest == "floor") ||
                       ((coord == "half_pixel" || coord == "pytorch_half_pixel") &&
                        (nearest == "round_prefer_floor" || nearest == "round_prefer_ceil"));
    if (mode != "nearest" || !exact) {
      return NodeError(
          i,
          absl::StrCat("Resize mode '", mode, "' with coordinate_transformation_mode '", coord,
                       "' and nearest_mode '", nearest,
                       "' is not supported (nearest-neighbour upsampling by integer factors only)"),
          absl::StatusCode::kUnimplemented);
    }
    const Dims d = DimsOf(*x);
    double fh = 0, fw = 0;
    const Const* scales = n.input_size() > 2 && !n.input(2).empty() ? ConstOf(n.input(2)) : nullptr;
    const Const* sizes = n.input_size() > 3 && !n.input(3).empty() ? ConstOf(n.input(3)) : nullptr;
    if (scales != nullptr && scales->numel() == 4) {
      if (scales->At(0) != 1 || scales->At(1) != 1)
        return NodeError(i, "Resize may scale height and width only");
      fh = scales->At(2);
      fw = scales->At(3);
    } else if (sizes != nullptr && sizes->numel() == 4) {
      if (sizes->At(1) != d.c) return NodeError(i, "Resize may scale height and width only");
      fh = sizes->At(2) / static_cast<double>(d.h);
      fw = sizes->At(3) / static_cast<double>(d.w);
    } else {
      return NodeError(i, "Resize needs constant scales or sizes of 4 values",
                       absl::StatusCode::kUnimplemented);
    }
    if (fh != std::floor(fh) || fw != std::floor(fw) || fh < 1 || fw < 1 || fh > 16 || fw > 16) {
      return NodeError(
          i,
          absl::StrCat("Resize by ", fh, "×", fw, " is not supported (integer factors 1–16 only)"),
          absl::StatusCode::kUnimplemented);
    }
    Bind(i, With(*x, g_.Upsample(x->v, static_cast<int>(fh), static_cast<int>(fw))));
    return absl::OkStatus();
  }

  absl::Status Concat(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<int64_t> axis = internal::IntAttr(n, "axis", 1);
    if (!axis.ok()) return NodeError(i, axis.status().message());
    std::vector<ValueId> parts;
    Act first;
    for (int k = 0; k < n.input_size(); ++k) {
      absl::StatusOr<Act> x = ActIn(i, k);
      if (!x.ok()) return x.status();
      if (k == 0) first = *x;
      const int64_t a = *axis < 0 ? *axis + x->rank : *axis;
      if (x->rank != first.rank || x->phys != first.phys || a < 0 || a >= x->rank ||
          x->phys[a] != 3 || DimsOf(*x).h != DimsOf(first).h || DimsOf(*x).w != DimsOf(first).w) {
        return NodeError(i,
                         "Concat is supported along the channel axis of feature maps with equal "
                         "layouts and spatial sizes only",
                         absl::StatusCode::kUnimplemented);
      }
      parts.push_back(x->v);
    }
    if (parts.empty()) return NodeError(i, "Concat has no inputs");
    Bind(i, With(first, g_.Concat(parts)));
    return absl::OkStatus();
  }

  absl::Status LayerNormalization(int i) {
    const onnx::NodeProto& n = g_proto_.node(i);
    absl::StatusOr<Act> x = ActIn(i, 0);
    if (!x.ok()) return x.status();
    absl::StatusOr<int64_t> axis = internal::IntAttr(n, "axis", -1);
    absl::StatusOr<float> eps = internal::FloatAttr(n, "epsilon", 1e-5f);
    if (!axis.ok() || !eps.ok()) return NodeError(i, "malformed attributes");
    absl::StatusOr<const Const*> scale = ConstIn(i, 1, "scale");
    if (!scale.ok()) return scale.status();
    const Const* bias = nullptr;
    if (n.input_size() > 2 && !n.input(2).empty()) {
      absl::StatusOr<const Const*> b = ConstIn(i, 2, "bias");
      if (!b.ok()) return b.status();
      bias = *b;
    }
    return EmitLayerNorm(i, *x, *axis, *eps, *scale, bias, n.input(1));
  }

  absl::Status BindOutput() {
    if (g_proto_.output_size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("the graph has ", g_proto_.output_size(),
                                                     " outputs; a classifier or detector has one"));
    }
    const std::string& name = g_proto_.output(0).name();
    auto it = syms_.find(name);
    if (it == syms_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("graph output '", name, "' is not produced by any node"));
    }
    if (const Deferred* d = std::get_if<Deferred>(&it->second)) return BindDetectOutput(name, *d);
    const Act* a = std::get_if<Act>(&it->second);
    if (a == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("graph output '", name, "' is a constant"));
    const Dims d = DimsOf(*a);
    if (d.h != 1 || d.w != 1) {
      return absl::InvalidArgumentError(absl::StrCat("graph output '", name, "' is ",
                                                     Shape(LogicalShape(*a)),
                                                     "; a classifier outputs [N, classes]"));
    }
    if (a->v == g_.inputs()[0]) return absl::InvalidArgumentError("the graph output is its input");
    g_.RenameValue(a->v, "logits");
    g_.MarkOutput(a->v);
    info_->output_name = name;
    info_->num_classes = d.c;
    return absl::OkStatus();
  }

  // The output computed by a decode tail: it must be YOLOv8's [N, 4 + classes, anchors] of the
  // head maps that entered the tail, as the engine's DetectDecode computes it.
  absl::Status BindDetectOutput(const std::string& name, const Deferred& out) {
    const Const& y = *out.sample;
    auto fail = [&](const std::string& why) {
      return absl::UnimplementedError(
          absl::StrCat("graph output '", name,
                       "' is computed after the head maps in a way the engine does "
                       "not implement: ",
                       why,
                       " (supported: YOLOv8's decode, [N, 4 + classes, anchors] with "
                       "cx, cy, w, h in input pixels and sigmoid class scores)"));
    };
    if (levels_.empty()) return fail("no head maps");
    if (y.shape.size() != 3 || y.shape[0] != 1 || y.is_int) {
      return fail(absl::StrCat("its shape is ", Shape(y.shape)));
    }
    const int64_t rows = y.shape[1], anchors = y.shape[2];
    const int64_t channels = DimsOf(levels_[0].act).c;
    const int64_t classes = rows - 4;
    if (classes < 1 || (channels - classes) < 4 || (channels - classes) % 4 != 0) {
      return fail(absl::StrCat(rows, " rows from head maps of ", channels, " channels"));
    }
    engine::DetectDecodeAttrs attrs;
    attrs.num_classes = classes;
    attrs.reg_max = static_cast<int>((channels - classes) / 4);
    engine::Graph ref;
    std::vector<ValueId> ref_in, levels;
    std::vector<engine::Tensor> samples;
    int64_t total = 0;
    for (const Level& l : levels_) {
      const Dims d = DimsOf(l.act);
      if (d.c != channels) return fail("head maps with different channel counts");
      if (info_->height % d.h != 0 || info_->width % d.w != 0 ||
          info_->height / d.h != info_->width / d.w) {
        return fail(absl::StrCat("a head map of ", d.h, "×", d.w, " is not at an integer stride"));
      }
      attrs.strides.push_back(static_cast<int>(info_->height / d.h));
      total += d.h * d.w;
      ref_in.push_back(ref.Input(absl::StrCat("level", ref_in.size()), d));
      levels.push_back(l.act.v);
      engine::Tensor t(1, d);  // NHWC from the NCHW sample
      for (int64_t c = 0; c < d.c; ++c) {
        for (int64_t p = 0; p < d.h * d.w; ++p)
          t.data()[p * d.c + c] = l.sample->f[c * d.h * d.w + p];
      }
      samples.push_back(std::move(t));
    }
    if (total != anchors) return fail(absl::StrCat(anchors, " anchors from ", total, " cells"));
    ref.MarkOutput(ref.DetectDecode(ref_in, attrs));
    absl::StatusOr<std::vector<engine::Tensor>> want = engine::RunReference(ref, samples);
    if (!want.ok()) return want.status();
    const float* w = (*want)[0].data();
    double worst = 0;
    int64_t at = 0;
    for (int64_t k = 0; k < rows * anchors; ++k) {
      const double err = std::fabs(double{y.f[k]} - w[k]) / std::max(1.0, std::fabs(double{w[k]}));
      if (!(err <= worst)) {
        worst = err;
        at = k;
      }
    }
    if (!(worst <= 1e-4)) {
      return fail(absl::StrCat("on sample head maps it differs from YOLOv8's decode by ", worst,
                               " (relative) at row ", at / anchors, ", anchor ", at % anchors));
    }
    const ValueId det = g_.DetectDecode(levels, attrs);
    g_.RenameValue(det, "detections");
    g_.MarkOutput(det);
    info_->output_name = name;
    info_->num_classes = classes;
    info_->detector = true;
    info_->num_anchors = anchors;
    info_->reg_max = attrs.reg_max;
    info_->strides = attrs.strides;
    return absl::OkStatus();
  }

  struct Level {
    Act act;
    ConstPtr sample;
  };

  const onnx::ModelProto& model_;
  const onnx::GraphProto& g_proto_;
  const OnnxImportOptions& opts_;
  OnnxModelInfo* info_;
  int64_t opset_ = 0;
  Graph g_;
  std::unordered_map<std::string, Sym> syms_;
  std::unordered_set<std::string> initializer_names_;
  std::unordered_set<std::string> graph_outputs_;
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, std::vector<int>> consumers_;
  std::vector<Pattern> pattern_;
  std::vector<Level> levels_;  // head maps feeding a decode tail, in first-use order
};

}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int k = 0; k < len; ++k) {
    out.push_back(kHex[digest[k] >> 4]);
    out.push_back(kHex[digest[k] & 15]);
  }
  return out;
}

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(f.gcount()));
  }
  if (f.bad()) return absl::InternalError(absl::StrCat("cannot read '", path, "'"));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int k = 0; k < len; ++k) {
    out.push_back(kHex[digest[k] >> 4]);
    out.push_back(kHex[digest[k] & 15]);
  }
  return out;
}

absl::StatusOr<ImportedOnnx> ImportOnnx(std::string_view bytes, const OnnxImportOptions& opts) {
  if (static_cast<int64_t>(bytes.size()) > opts.limits.max_file_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the model is ", bytes.size(),
                                                     " bytes, more than the limit of ",
                                                     opts.limits.max_file_bytes));
  }
  if (bytes.empty()) return absl::InvalidArgumentError("the model file is empty");
  onnx::ModelProto model;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        "not a valid ONNX model: the protobuf does not parse (truncated, corrupt or not ONNX)");
  }
  ImportedOnnx out;
  out.info.file_bytes = static_cast<int64_t>(bytes.size());
  out.info.sha256 = Sha256Hex(bytes);
  Importer importer(model, opts, &out.info);
  absl::StatusOr<Graph> g = importer.Run();
  if (!g.ok()) return g.status();
  out.graph = *std::move(g);
  return out;
}

absl::StatusOr<ImportedOnnx> ImportOnnxFile(const std::string& path,
                                            const OnnxImportOptions& opts) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ONNX file '", path, "'"));
  const std::streamoff size = f.tellg();
  if (size < 0) return absl::InvalidArgumentError(absl::StrCat("cannot read '", path, "'"));
  if (size > opts.limits.max_file_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "'", path, "' is ", size, " bytes, more than the limit of ", opts.limits.max_file_bytes));
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  f.seekg(0);
  if (!f.read(bytes.data(), size)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read '", path, "'"));
  }
  absl::StatusOr<ImportedOnnx> m = ImportOnnx(bytes, opts);
  if (!m.ok()) {
    return absl::Status(m.status().code(), absl::StrCat(path, ": ", m.status().message()));
  }
  return m;
}

}  // namespace visionserve::models
