// DetectDecode: YOLOv8-style anchor-free head decode (see DetectDecodeAttrs in engine/graph.h).
// Per anchor: the ISA's softmax kernel over the four reg_max-bin distance distributions, their
// expectations, the box; the ISA's sigmoid kernel over the class logits. Tiles are chunks of
// anchors of one image; the output is [4 + classes, anchors] per image, so each tile writes
// strided columns.

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/kernels/activation_kernels.h"
#include "engine/kernels/normalization_kernels.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {

namespace {

constexpr int64_t kAnchorsPerTile = 512;

class DetectDecodeOp final : public Op {
 public:
  DetectDecodeOp(const OpPlanInput& in, const DetectDecodeAttrs& a)
      : norm_(kernels::GetNormalizationKernels(in.isa)),
        sigmoid_(kernels::GetActivationKernel(Activation::kSigmoid, in.isa)),
        inputs_(in.inputs),
        output_(in.output),
        batch_(in.batch),
        classes_(a.num_classes),
        reg_max_(a.reg_max),
        anchors_(in.output_dims.w) {
    int64_t start = 0;
    for (size_t l = 0; l < in.input_dims.size(); ++l) {
      levels_.push_back(
          Level{start, in.input_dims[l].h, in.input_dims[l].w, static_cast<float>(a.strides[l])});
      start += in.input_dims[l].h * in.input_dims[l].w;
    }
    chunks_ = (anchors_ + kAnchorsPerTile - 1) / kAnchorsPerTile;
  }

  int64_t NumTiles(int /*stage*/) const override { return batch_ * chunks_; }

  size_t ScratchBytes() const override {
    return static_cast<size_t>((4 * reg_max_ + classes_ + 15) / 16 * 16) * sizeof(float);
  }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* scratch) const override {
    float* probs = reinterpret_cast<float*>(scratch);
    float* scores = probs + 4 * reg_max_;
    const int64_t channels = 4 * reg_max_ + classes_;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / chunks_;
      const int64_t a0 = (t % chunks_) * kAnchorsPerTile;
      const int64_t a1 = std::min(anchors_, a0 + kAnchorsPerTile);
      float* out = ctx.Resolve(output_) + n * (4 + classes_) * anchors_;
      size_t l = 0;
      for (int64_t a = a0; a < a1; ++a) {
        while (l + 1 < levels_.size() && a >= levels_[l + 1].start) ++l;
        const Level& lv = levels_[l];
        const int64_t cell = a - lv.start;
        const float* px = ctx.Resolve(inputs_[l]) + (n * lv.h * lv.w + cell) * channels;
        norm_.softmax(px, probs, 4, reg_max_);
        float dist[4];
        for (int side = 0; side < 4; ++side) {
          float e = 0;
          for (int k = 0; k < reg_max_; ++k)
            e += probs[side * reg_max_ + k] * static_cast<float>(k);
          dist[side] = e;
        }
        const float ax = static_cast<float>(cell % lv.w) + 0.5f;
        const float ay = static_cast<float>(cell / lv.w) + 0.5f;
        const float x1 = ax - dist[0], y1 = ay - dist[1], x2 = ax + dist[2], y2 = ay + dist[3];
        out[0 * anchors_ + a] = (x1 + x2) * 0.5f * lv.stride;
        out[1 * anchors_ + a] = (y1 + y2) * 0.5f * lv.stride;
        out[2 * anchors_ + a] = (x2 - x1) * lv.stride;
        out[3 * anchors_ + a] = (y2 - y1) * lv.stride;
        sigmoid_(px + 4 * reg_max_, scores, classes_);
        for (int64_t k = 0; k < classes_; ++k) out[(4 + k) * anchors_ + a] = scores[k];
      }
    }
  }

  std::string Describe() const override {
    return absl::StrFormat("detect_decode %d levels %d anchors reg_max=%d %s tiles=%d",
                           levels_.size(), anchors_, reg_max_, norm_.softmax_name, NumTiles(0));
  }

 private:
  struct Level {
    int64_t start, h, w;
    float stride;
  };
  const kernels::NormalizationKernels& norm_;
  kernels::ActivationFn sigmoid_;
  std::vector<BufferRef> inputs_;
  BufferRef output_;
  std::vector<Level> levels_;
  int64_t batch_, classes_, reg_max_, anchors_, chunks_ = 1;
};

}  // namespace

OpResult CreateDetectDecodeOp(const OpPlanInput& in) {
  const Node& node = in.node();
  const auto& a = node.attr<DetectDecodeAttrs>();
  if (in.input_dims.empty() || in.input_dims.size() != a.strides.size() ||
      in.inputs.size() != in.input_dims.size() || a.reg_max < 1 || a.num_classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("DetectDecode %s: one input and one stride per level", node.name));
  }
  int64_t anchors = 0;
  for (size_t l = 0; l < in.input_dims.size(); ++l) {
    const Dims& d = in.input_dims[l];
    if (d.c != 4 * a.reg_max + a.num_classes || a.strides[l] < 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("DetectDecode %s: level %d has %d channels for reg_max %d and %d classes",
                          node.name, l, d.c, a.reg_max, a.num_classes));
    }
    anchors += d.h * d.w;
  }
  if (!(in.output_dims == Dims{4 + a.num_classes, anchors, 1})) {
    return absl::InvalidArgumentError(absl::StrFormat("DetectDecode %s: output must be %dx%dx1",
                                                      node.name, 4 + a.num_classes, anchors));
  }
  return std::make_unique<DetectDecodeOp>(in, a);
}

}  // namespace visionserve::engine
