#include "models/detector.h"

#include <algorithm>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "models/builders.h"
#include "models/catalog.h"
#include "models/synthetic_weights.h"

namespace visionserve::models {

namespace {

using engine::Activation;
using engine::Graph;
using engine::OpType;
using engine::ValueId;
using internal::ConvSpec;

constexpr float kBnEps = 1e-3f;  // YOLO necks and heads

// Conv (no bias) + BatchNorm + SiLU, named "<prefix>.conv" / "<prefix>.bn".
ValueId Cbs(Graph& g, ValueId x, int64_t out, int kernel, int stride, const std::string& prefix) {
  ValueId y =
      internal::Conv(g, x, ConvSpec{.out_channels = out, .kernel = kernel, .stride = stride}, false,
                     prefix + ".conv");
  y = g.BatchNorm(y, prefix + ".bn", kBnEps);
  return g.Act(y, Activation::kSiLU);
}

// CSP block (YOLOv5's C3): two 1×1 branches of out/2 channels, `depth` residual bottlenecks
// (1×1 then 3×3) on the first, concatenated and fused by a 1×1.
ValueId Csp(Graph& g, ValueId x, int64_t out, int depth, const std::string& prefix) {
  const int64_t half = std::max<int64_t>(out / 2, 8);
  ValueId a = Cbs(g, x, half, 1, 1, prefix + ".cv1");
  for (int i = 0; i < depth; ++i) {
    const std::string b = absl::StrCat(prefix, ".m.", i);
    ValueId y = Cbs(g, a, half, 1, 1, b + ".cv1");
    y = Cbs(g, y, half, 3, 1, b + ".cv2");
    a = g.Add(a, y);
  }
  const ValueId c = Cbs(g, x, half, 1, 1, prefix + ".cv2");
  return Cbs(g, g.Concat(std::vector<ValueId>{a, c}), out, 1, 1, prefix + ".cv3");
}

// Decoupled head of one level: box distributions and class logits, concatenated per cell.
ValueId Head(Graph& g, ValueId x, const DetectorInfo& d, int64_t box_c, int64_t cls_c,
             const std::string& prefix) {
  ValueId b = Cbs(g, x, box_c, 3, 1, prefix + ".box.0");
  b = Cbs(g, b, box_c, 3, 1, prefix + ".box.1");
  b = internal::Conv(g, b, ConvSpec{.out_channels = 4 * d.reg_max, .kernel = 1}, true,
                     prefix + ".box.2");
  ValueId c = Cbs(g, x, cls_c, 3, 1, prefix + ".cls.0");
  c = Cbs(g, c, cls_c, 3, 1, prefix + ".cls.1");
  c = internal::Conv(g, c, ConvSpec{.out_channels = d.num_classes, .kernel = 1}, true,
                     prefix + ".cls.2");
  return g.Concat(std::vector<ValueId>{b, c});
}

// Removes nodes whose outputs nothing reads (the classifier head, unused late stages).
void RemoveDeadNodes(Graph& g) {
  for (bool changed = true; changed;) {
    changed = false;
    const std::vector<int32_t> uses = g.UseCounts();
    for (engine::Node& n : g.mutable_nodes()) {
      if (!n.dead && uses[n.output] == 0) {
        n.dead = true;
        changed = true;
      }
    }
  }
  g.Compact();
}

absl::StatusOr<Graph> Build(const DetectorInfo& d, uint64_t seed, bool synthetic) {
  absl::StatusOr<const ModelInfo*> backbone = FindModel(d.backbone);
  if (!backbone.ok()) return backbone.status();
  const internal::BuildSpec spec{d.input_size, 1000};
  absl::StatusOr<Graph> built = std::visit(
      [&](const auto& params) { return internal::BuildFamily(params, spec); }, (*backbone)->arch);
  if (!built.ok()) return built.status();
  Graph& g = *built;
  // Taps: per stride, the last value at that resolution with the stage's width (not a LayerNorm
  // that starts the next downsampling), before the classifier's pooling.
  ValueId taps[3] = {engine::kNoValue, engine::kNoValue, engine::kNoValue};
  for (const engine::Node& n : g.nodes()) {
    if (n.type == OpType::kGlobalAvgPool) break;
    if (n.type == OpType::kLayerNorm) continue;
    const engine::Dims& dims = g.value(n.output).dims;
    for (int l = 0; l < 3; ++l) {
      const int64_t size = (d.input_size + (8 << l) - 1) / (8 << l);
      if (dims.h == size && dims.w == size && dims.c == d.tap_channels[l]) taps[l] = n.output;
    }
  }
  for (int l = 0; l < 3; ++l) {
    if (taps[l] == engine::kNoValue) {
      return absl::InternalError(absl::StrCat(d.name, ": no ", d.tap_channels[l],
                                              "-channel tap at stride ", 8 << l, " in ",
                                              d.backbone));
    }
  }
  g.mutable_outputs().clear();
  const int64_t w = d.neck_width;
  const ValueId p5 = Cbs(g, taps[2], 4 * w, 1, 1, "neck.lateral5");
  const ValueId p4 = Cbs(g, taps[1], 2 * w, 1, 1, "neck.lateral4");
  const ValueId p3 = Cbs(g, taps[0], w, 1, 1, "neck.lateral3");
  const ValueId t4 = Csp(g, g.Concat(std::vector<ValueId>{g.Upsample(p5, 2, 2), p4}), 2 * w,
                         d.csp_depth, "neck.td4");
  const ValueId t4r = Cbs(g, t4, w, 1, 1, "neck.reduce4");
  const ValueId out3 =
      Csp(g, g.Concat(std::vector<ValueId>{g.Upsample(t4r, 2, 2), p3}), w, d.csp_depth, "neck.td3");
  const ValueId out4 =
      Csp(g, g.Concat(std::vector<ValueId>{Cbs(g, out3, w, 3, 2, "neck.down3"), t4r}), 2 * w,
          d.csp_depth, "neck.bu4");
  const ValueId out5 =
      Csp(g, g.Concat(std::vector<ValueId>{Cbs(g, out4, 2 * w, 3, 2, "neck.down4"), p5}), 4 * w,
          d.csp_depth, "neck.bu5");
  // YOLOv8's head widths: box max(16, C3/4, 4·reg_max), class max(C3, min(classes, 100)).
  const int64_t box_c = std::max<int64_t>({16, w / 4, 4 * d.reg_max});
  const int64_t cls_c = std::max<int64_t>(w, std::min<int64_t>(d.num_classes, 100));
  std::vector<ValueId> levels;
  const ValueId outs[3] = {out3, out4, out5};
  for (int l = 0; l < 3; ++l) {
    levels.push_back(Head(g, outs[l], d, box_c, cls_c, absl::StrCat("head.", l)));
  }
  engine::DetectDecodeAttrs a;
  a.num_classes = d.num_classes;
  a.reg_max = d.reg_max;
  a.strides = {8, 16, 32};
  const ValueId det = g.DetectDecode(levels, a);
  g.RenameValue(det, "detections");
  g.MarkOutput(det);
  RemoveDeadNodes(g);
  if (synthetic) InitSyntheticWeights(g, seed);
  return built;
}

std::vector<DetectorInfo> MakeCatalog() {
  struct Backbone {
    const char* name;
    std::array<int64_t, 3> taps;
  };
  const Backbone backbones[] = {{"efficientnet_b0", {40, 112, 320}},
                                {"regnet_y_400mf", {104, 208, 440}},
                                {"convnext_tiny", {192, 384, 768}}};
  std::vector<DetectorInfo> out;
  for (const Backbone& b : backbones) {
    for (int size : {320, 416, 640}) {
      DetectorInfo d;
      d.name = absl::StrCat("det_", b.name, "_", size);
      d.backbone = b.name;
      d.input_size = size;
      d.tap_channels = b.taps;
      for (int s : {8, 16, 32}) d.anchors += int64_t{size / s} * (size / s);
      absl::StatusOr<Graph> g = Build(d, 0, /*synthetic=*/false);
      if (g.ok()) {
        d.params = g->ParameterCount();
        d.gmacs = static_cast<double>(g->Macs()) * 1e-9;
      }
      out.push_back(std::move(d));
    }
  }
  return out;
}

}  // namespace

const std::vector<DetectorInfo>& DetectorCatalog() {
  static const std::vector<DetectorInfo>* catalog = new std::vector<DetectorInfo>(MakeCatalog());
  return *catalog;
}

absl::StatusOr<const DetectorInfo*> FindDetector(std::string_view name) {
  for (const DetectorInfo& d : DetectorCatalog()) {
    if (d.name == name) return &d;
  }
  std::string names;
  for (const DetectorInfo& d : DetectorCatalog()) {
    const std::string wanted(name);
    if (absl::StrContains(wanted, d.backbone) || absl::StrContains(d.name, wanted)) {
      absl::StrAppend(&names, names.empty() ? "" : ", ", d.name);
    }
  }
  if (names.empty()) {  // no backbone named: list them all (there are few)
    for (const DetectorInfo& d : DetectorCatalog()) {
      absl::StrAppend(&names, names.empty() ? "" : ", ", d.name);
    }
    return absl::NotFoundError(
        absl::StrCat("unknown detector \"", std::string(name), "\"; detectors: ", names));
  }
  return absl::NotFoundError(
      absl::StrCat("unknown detector \"", std::string(name), "\"; did you mean: ", names));
}

absl::StatusOr<engine::Graph> BuildDetector(std::string_view name, const BuildOptions& opts,
                                            int64_t num_classes) {
  absl::StatusOr<const DetectorInfo*> info = FindDetector(name);
  if (!info.ok()) return info.status();
  DetectorInfo d = **info;
  if (opts.input_size != 0) {
    if (opts.input_size < 64 || opts.input_size > 2048 || opts.input_size % 32 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "detector input_size must be a multiple of 32 in [64, 2048], got ", opts.input_size));
    }
    d.input_size = opts.input_size;
  }
  const int64_t classes = num_classes != 0                                 ? num_classes
                          : opts.num_classes != BuildOptions{}.num_classes ? opts.num_classes
                                                                           : d.num_classes;
  if (classes < 1 || classes > 10000) {
    return absl::InvalidArgumentError(
        absl::StrCat("detector num_classes must be in [1, 10000], got ", classes));
  }
  d.num_classes = classes;
  return Build(d, opts.seed, opts.synthetic_weights);
}

}  // namespace visionserve::models
