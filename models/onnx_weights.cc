// Loading an ONNX export's weights into the zoo model of the same architecture.

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/passes.h"
#include "models/onnx.h"

namespace visionserve::models {

namespace {

using engine::Node;
using engine::OpType;

// Everything about a fused node that must match between the zoo and the file, except weights.
std::string Describe(const engine::Graph& g, const Node& n) {
  std::string s(engine::OpTypeName(n.type));
  for (engine::ValueId v : n.inputs) absl::StrAppend(&s, " in:", g.value(v).dims.ToString());
  absl::StrAppend(&s, " out:", g.value(n.output).dims.ToString());
  if (const auto* c = std::get_if<engine::Conv2DAttrs>(&n.attrs)) {
    absl::StrAppendFormat(&s, " k%dx%d s%dx%d p%d,%d,%d,%d d%dx%d g%d act=%s res=%d norm=%d",
                          c->kernel_h, c->kernel_w, c->stride_h, c->stride_w, c->pad_top,
                          c->pad_left, c->pad_bottom, c->pad_right, c->dilation_h, c->dilation_w,
                          c->groups, std::string(engine::ActivationName(c->act)), c->fused_residual,
                          c->fused_channel_norm);
  } else if (const auto* l = std::get_if<engine::LinearAttrs>(&n.attrs)) {
    absl::StrAppendFormat(&s, " act=%s res=%d", std::string(engine::ActivationName(l->act)),
                          l->fused_residual);
  } else if (const auto* a = std::get_if<engine::ActivationAttrs>(&n.attrs)) {
    absl::StrAppend(&s, " act=", std::string(engine::ActivationName(a->act)));
  } else if (const auto* a = std::get_if<engine::AddAttrs>(&n.attrs)) {
    absl::StrAppend(&s, " act=", std::string(engine::ActivationName(a->act)));
  } else if (const auto* se = std::get_if<engine::SqueezeExciteAttrs>(&n.attrs)) {
    absl::StrAppend(&s, " squeeze=", se->squeeze_channels,
                    " inner=", std::string(engine::ActivationName(se->inner_act)),
                    " gate=", std::string(engine::ActivationName(se->gate_act)));
  } else if (const auto* m = std::get_if<engine::MaxPoolAttrs>(&n.attrs)) {
    absl::StrAppendFormat(&s, " k%dx%d s%dx%d p%d,%d,%d,%d", m->kernel_h, m->kernel_w, m->stride_h,
                          m->stride_w, m->pad_top, m->pad_left, m->pad_bottom, m->pad_right);
  }
  absl::StrAppend(&s, " params:");
  for (engine::ParamId p : n.params) absl::StrAppend(&s, " ", g.param(p).numel());
  return s;
}

}  // namespace

absl::StatusOr<engine::Graph> BuildModelWithOnnxWeights(std::string_view model_name,
                                                        const std::string& onnx_path,
                                                        const BuildOptions& build,
                                                        const OnnxImportOptions& opts,
                                                        OnnxModelInfo* info) {
  const std::string name(model_name);
  BuildOptions bo = build;
  bo.synthetic_weights = true;  // the folding passes need values; all of them are replaced
  absl::StatusOr<engine::Graph> zoo = BuildModel(name, bo);
  if (!zoo.ok()) return zoo.status();
  OnnxImportOptions io = opts;
  io.input_size = static_cast<int>(zoo->value(zoo->inputs()[0]).dims.h);
  absl::StatusOr<ImportedOnnx> file = ImportOnnxFile(onnx_path, io);
  if (!file.ok()) return file.status();
  if (info != nullptr) *info = file->info;
  if (file->info.num_classes != bo.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(onnx_path, " has ", file->info.num_classes,
                                                   " classes; ", name, " is built with ",
                                                   bo.num_classes));
  }
  engine::Graph& src = file->graph;
  if (absl::Status s = engine::OptimizeGraph(*zoo); !s.ok()) return s;
  if (absl::Status s = engine::OptimizeGraph(src); !s.ok()) return s;
  const auto& zn = zoo->nodes();
  const auto& fn = src.nodes();
  for (size_t i = 0; i < std::max(zn.size(), fn.size()); ++i) {
    if (i >= zn.size() || i >= fn.size()) {
      return absl::InvalidArgumentError(absl::StrCat(onnx_path, " is not a ", name,
                                                     ": after fusion it has ", fn.size(),
                                                     " ops, the zoo model ", zn.size()));
    }
    const std::string want = Describe(*zoo, zn[i]), got = Describe(src, fn[i]);
    if (want != got) {
      return absl::InvalidArgumentError(absl::StrCat(onnx_path, " is not a ", name, ": fused op ",
                                                     i, " is [", got, "] in the file but [", want,
                                                     "] in the zoo model ('", zn[i].name, "')"));
    }
  }
  for (size_t i = 0; i < zn.size(); ++i) {
    for (size_t k = 0; k < zn[i].params.size(); ++k) {
      zoo->mutable_param(zn[i].params[k]).data = src.param(fn[i].params[k]).data;
    }
  }
  if (absl::Status s = zoo->Validate(); !s.ok()) return s;
  return zoo;
}

}  // namespace visionserve::models
