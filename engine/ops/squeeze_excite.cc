// Squeeze-and-excitation: y = x · gate(fc2(inner(fc1(avgpool(x))))) per image, with torchvision
// SqueezeExcitation's parameters (fc1.weight [S,C,1,1], fc1.bias [S], fc2.weight [C,S,1,1],
// fc2.bias [C]).
//
// One stage, one tile per image: pool, excitation, then the scaling pass. The pooled means and
// gates live in the tile's scratch. The op is in place (y may be x's buffer), which rules out
// splitting one image over several tiles: the scaling pass of one tile would overwrite pixels
// another tile is still pooling, and the op interface has no per-run buffer in which a pool stage
// could leave its sums for a later stage.

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/kernels/elementwise_kernels.h"
#include "engine/kernels/pooling_kernels.h"
#include "engine/kernels/squeeze_excite_kernels.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {

namespace {

// fc1 as is, fc2 transposed to [S][C]; shared by every plan of the model.
struct SqueezeExciteWeights {
  std::vector<float> w1, b1, w2t, b2;
};

int64_t RoundUp16(int64_t n) { return (n + 15) / 16 * 16; }

class SqueezeExciteOp final : public Op {
 public:
  SqueezeExciteOp(const OpPlanInput& in, std::shared_ptr<const SqueezeExciteWeights> weights,
                  const SqueezeExciteAttrs& attrs)
      : weights_(std::move(weights)),
        pool_(kernels::GetPoolingKernels(in.isa)),
        scale_(kernels::GetElementwiseKernels(in.isa)),
        excite_(kernels::GetSqueezeExciteKernel(in.isa)),
        input_(in.inputs[0]),
        output_(in.output),
        batch_(in.batch),
        pixels_(in.output_dims.h * in.output_dims.w),
        channels_(in.output_dims.c) {
    fc_.channels = channels_;
    fc_.squeeze_channels = attrs.squeeze_channels;
    fc_.w1 = weights_->w1.data();
    fc_.b1 = weights_->b1.data();
    fc_.w2t = weights_->w2t.data();
    fc_.b2 = weights_->b2.data();
    fc_.inner = attrs.inner_act;
    fc_.gate = attrs.gate_act;
  }

  int64_t NumTiles(int /*stage*/) const override { return batch_; }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* scratch) const override {
    const float* x = ctx.Resolve(input_);
    float* y = ctx.Resolve(output_);
    float* pooled = reinterpret_cast<float*>(scratch);
    float* gate = pooled + RoundUp16(channels_);
    float* hidden = gate + RoundUp16(channels_);
    for (int64_t n = begin; n < end; ++n) {
      const float* xi = x + n * pixels_ * channels_;
      pool_.gavgpool(xi, pixels_, channels_, channels_, pooled);
      excite_.fn(fc_, pooled, hidden, gate);
      scale_.vmulc(xi, gate, y + n * pixels_ * channels_, pixels_, channels_);
    }
  }

  size_t ScratchBytes() const override {
    return static_cast<size_t>(2 * RoundUp16(channels_) + RoundUp16(fc_.squeeze_channels)) *
           sizeof(float);
  }

  // Pool and scale (one per element each) plus both FCs.
  int64_t Flops() const override {
    return batch_ * (2 * pixels_ * channels_ + 4 * channels_ * fc_.squeeze_channels);
  }

  std::string Describe() const override {
    return absl::StrFormat("squeeze_excite C=%d S=%d %s/%s %s+%s+%s tiles=%d (image per tile)",
                           channels_, fc_.squeeze_channels, ActivationName(fc_.inner),
                           ActivationName(fc_.gate), pool_.gavgpool_name, excite_.name,
                           scale_.vmulc_name, NumTiles(0));
  }

 private:
  std::shared_ptr<const SqueezeExciteWeights> weights_;
  const kernels::PoolingKernels& pool_;
  const kernels::ElementwiseKernels& scale_;
  kernels::SqueezeExciteKernel excite_;
  kernels::SqueezeExciteFc fc_;
  BufferRef input_, output_;
  int64_t batch_, pixels_, channels_;
};

}  // namespace

OpResult CreateSqueezeExciteOp(const OpPlanInput& in) {
  const Node& node = in.node();
  if (in.input_dims.size() != 1 || in.inputs.size() != 1 || !(in.input_dims[0] == in.output_dims)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("SqueezeExcite %s: expects one input shaped like the output", node.name));
  }
  const auto& attrs = node.attr<SqueezeExciteAttrs>();
  const int64_t c = in.output_dims.c;
  const int64_t s = attrs.squeeze_channels;
  const auto shape_ok = [&](int i, std::vector<int64_t> shape) {
    const Param& p = in.param(i);
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    return p.shape == shape && static_cast<int64_t>(p.data.size()) == numel;
  };
  if (s < 1 || node.params.size() != 4 || !shape_ok(0, {s, c, 1, 1}) || !shape_ok(1, {s}) ||
      !shape_ok(2, {c, s, 1, 1}) || !shape_ok(3, {c})) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SqueezeExcite %s: needs fc1.weight [%d,%d,1,1], fc1.bias [%d], fc2.weight [%d,%d,1,1], "
        "fc2.bias [%d] with data",
        node.name, s, c, s, c, s, c));
  }
  if (in.weights == nullptr) return absl::InvalidArgumentError("no weight cache");
  auto weights = in.weights->GetOrCreate<SqueezeExciteWeights>(
      in.node_index, "squeeze_excite",
      [&]() -> absl::StatusOr<std::shared_ptr<const SqueezeExciteWeights>> {
        auto w = std::make_shared<SqueezeExciteWeights>();
        w->w1 = in.param(0).data;
        w->b1 = in.param(1).data;
        w->b2 = in.param(3).data;
        const std::vector<float>& w2 = in.param(2).data;  // [C][S]
        w->w2t.resize(static_cast<size_t>(s * c));
        for (int64_t i = 0; i < c; ++i) {
          for (int64_t j = 0; j < s; ++j) w->w2t[j * c + i] = w2[i * s + j];
        }
        return std::shared_ptr<const SqueezeExciteWeights>(std::move(w));
      });
  if (!weights.ok()) return weights.status();
  return std::make_unique<SqueezeExciteOp>(in, *std::move(weights), attrs);
}

}  // namespace visionserve::engine
