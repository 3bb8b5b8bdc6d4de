// LayerNorm over the channels of every pixel, with its affine (weight, bias). Tiles are runs of
// pixels; in place is fine (each pixel is read completely before it is written).

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/kernels/normalization_kernels.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {

namespace {

struct LayerNormAffine {
  std::vector<float> gamma;
  std::vector<float> beta;
};

class LayerNormOp final : public Op {
 public:
  LayerNormOp(const OpPlanInput& in, std::shared_ptr<const LayerNormAffine> affine, float eps,
              int64_t pixels_per_tile)
      : kernels_(kernels::GetNormalizationKernels(in.isa)),
        affine_(std::move(affine)),
        eps_(eps),
        input_(in.inputs[0]),
        output_(in.output),
        pixels_(in.batch * in.output_dims.h * in.output_dims.w),
        channels_(in.output_dims.c),
        pixels_per_tile_(pixels_per_tile) {}

  int64_t NumTiles(int /*stage*/) const override {
    return (pixels_ + pixels_per_tile_ - 1) / pixels_per_tile_;
  }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* /*scratch*/) const override {
    const float* x = ctx.Resolve(input_);
    float* y = ctx.Resolve(output_);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t p0 = t * pixels_per_tile_;
      const int64_t count = std::min(pixels_per_tile_, pixels_ - p0);
      kernels_.layernorm(x + p0 * channels_, y + p0 * channels_, count, channels_,
                         affine_->gamma.data(), affine_->beta.data(), eps_);
    }
  }

  // Sum, squared deviations, normalize and affine: about 7 per element.
  int64_t Flops() const override { return 7 * pixels_ * channels_; }

  std::string Describe() const override {
    return absl::StrFormat("layernorm C=%d %s pixels/tile=%d tiles=%d", channels_,
                           kernels_.layernorm_name, pixels_per_tile_, NumTiles(0));
  }

 private:
  const kernels::NormalizationKernels& kernels_;
  std::shared_ptr<const LayerNormAffine> affine_;
  float eps_;
  BufferRef input_, output_;
  int64_t pixels_, channels_, pixels_per_tile_;
};

}  // namespace

OpResult CreateLayerNormOp(const OpPlanInput& in) {
  const Node& node = in.node();
  if (in.input_dims.size() != 1 || in.inputs.size() != 1 || !(in.input_dims[0] == in.output_dims)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("LayerNorm %s: expects one input shaped like the output", node.name));
  }
  const int64_t c = in.output_dims.c;
  if (node.params.size() != 2 || static_cast<int64_t>(in.param(0).data.size()) != c ||
      static_cast<int64_t>(in.param(1).data.size()) != c) {
    return absl::InvalidArgumentError(
        absl::StrFormat("LayerNorm %s: needs weight and bias of %d values", node.name, c));
  }
  const float eps = node.attr<LayerNormAttrs>().eps;
  if (!(eps >= 0.f)) {
    return absl::InvalidArgumentError(absl::StrFormat("LayerNorm %s: bad eps", node.name));
  }
  if (in.weights == nullptr) return absl::InvalidArgumentError("no weight cache");
  auto affine = in.weights->GetOrCreate<LayerNormAffine>(
      in.node_index, "layernorm", [&]() -> absl::StatusOr<std::shared_ptr<const LayerNormAffine>> {
        return std::make_shared<const LayerNormAffine>(
            LayerNormAffine{in.param(0).data, in.param(1).data});
      });
  if (!affine.ok()) return affine.status();
  // About 4 tiles per worker, each at least 32 KiB.
  const int64_t pixels = in.batch * in.output_dims.h * in.output_dims.w;
  int64_t per_tile = pixels;
  if (in.num_threads > 1) {
    const int64_t target = 4 * static_cast<int64_t>(in.num_threads);
    const int64_t min_pixels = std::max<int64_t>(1, 8192 / c);
    per_tile =
        std::clamp<int64_t>((pixels + target - 1) / target, std::min(min_pixels, pixels), pixels);
  }
  return std::make_unique<LayerNormOp>(in, *std::move(affine), eps, per_tile);
}

}  // namespace visionserve::engine
