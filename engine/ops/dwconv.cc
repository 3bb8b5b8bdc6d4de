// Depthwise k×k convolution (a Conv2D with groups == Cin == Cout), with the fused epilogue
// (bias, residual, activation) and optionally the fused channel norm. Tiles are (image, band of
// output rows); each tile runs one dwconv microkernel call.

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/kernels/dwconv.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {

namespace {

using kernels::DwconvParams;
using kernels::DwconvPackedWeights;

class DepthwiseConvOp final : public Op {
 public:
  DepthwiseConvOp(const OpPlanInput& in, const DwconvParams& p, kernels::DwconvKernel kernel,
                  std::shared_ptr<const DwconvPackedWeights> weights, int64_t rows_per_tile)
      : params_(p),
        kernel_(kernel),
        weights_(std::move(weights)),
        input_(in.inputs[0]),
        residual_(in.node().attr<Conv2DAttrs>().fused_residual ? in.inputs[1] : BufferRef{}),
        has_residual_(in.node().attr<Conv2DAttrs>().fused_residual),
        output_(in.output),
        batch_(in.batch),
        rows_per_tile_(rows_per_tile),
        bands_((p.out_h + rows_per_tile - 1) / rows_per_tile) {}

  int64_t NumTiles(int /*stage*/) const override { return batch_ * bands_; }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* scratch) const override {
    const float* in = ctx.Resolve(input_);
    const float* res = has_residual_ ? ctx.Resolve(residual_) : nullptr;
    float* out = ctx.Resolve(output_);
    const int64_t in_image = params_.in_h * params_.in_w * params_.channels;
    const int64_t out_image = params_.out_h * params_.out_w * params_.channels;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / bands_;
      const int64_t oy0 = (t % bands_) * rows_per_tile_;
      const int64_t oy1 = std::min(params_.out_h, oy0 + rows_per_tile_);
      kernel_.fn(params_, in + n * in_image, weights_->weights(), weights_->bias(),
                 res != nullptr ? res + n * out_image : nullptr, out + n * out_image, oy0, oy1,
                 reinterpret_cast<float*>(scratch));
    }
  }

  size_t ScratchBytes() const override {
    return static_cast<size_t>(kernels::DwconvScratchFloats(params_)) * sizeof(float);
  }

  int64_t Flops() const override {
    return 2 * batch_ * params_.out_h * params_.out_w * params_.channels * params_.kernel_h *
           params_.kernel_w;
  }

  std::string Describe() const override {
    const bool act = params_.act != Activation::kNone;
    const std::string epilogue =
        absl::StrFormat("%s%s%s%s", has_residual_ ? "+residual" : "", act ? "+" : "",
                        act ? ActivationName(params_.act) : "", params_.channel_norm ? "+norm" : "");
    return absl::StrFormat("dwconv %dx%d s%d%s %s rows/tile=%d tiles=%d", params_.kernel_h,
                           params_.kernel_w, params_.stride_h, epilogue, kernel_.name,
                           rows_per_tile_, NumTiles(0));
  }

 private:
  DwconvParams params_;
  kernels::DwconvKernel kernel_;
  std::shared_ptr<const DwconvPackedWeights> weights_;
  BufferRef input_;
  BufferRef residual_;
  bool has_residual_;
  BufferRef output_;
  int64_t batch_;
  int64_t rows_per_tile_;
  int64_t bands_;
};

int64_t ConvOut(int64_t in, int k, int stride, int pad_a, int pad_b, int dilation) {
  return (in + pad_a + pad_b - static_cast<int64_t>(dilation) * (k - 1) - 1) / stride + 1;
}

}  // namespace

OpResult CreateDepthwiseConvOp(const OpPlanInput& in) {
  const Node& node = in.node();
  const auto& a = node.attr<Conv2DAttrs>();
  if (in.input_dims.empty() || in.inputs.size() != in.input_dims.size()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: missing input", node.name));
  }
  const Dims& id = in.input_dims[0];
  const Dims& od = in.output_dims;
  const int64_t c = id.c;
  if (!a.is_depthwise(c)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: not depthwise (groups %d, in %d, out %d channels)", node.name, a.groups, c,
        a.out_channels));
  }
  if (a.kernel_h < 1 || a.kernel_w < 1 || a.stride_h < 1 || a.stride_w < 1 ||
      a.dilation_h < 1 || a.dilation_w < 1 || a.pad_top < 0 || a.pad_left < 0 ||
      a.pad_bottom < 0 || a.pad_right < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: bad kernel, stride, dilation or padding", node.name));
  }
  const int64_t oh = ConvOut(id.h, a.kernel_h, a.stride_h, a.pad_top, a.pad_bottom, a.dilation_h);
  const int64_t ow = ConvOut(id.w, a.kernel_w, a.stride_w, a.pad_left, a.pad_right, a.dilation_w);
  if (od.h != oh || od.w != ow || od.c != c || oh < 1 || ow < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: output %s does not match the geometry (%dx%dx%d)", node.name, od.ToString(), oh, ow,
        c));
  }
  if (a.fused_residual && (in.input_dims.size() != 2 || !(in.input_dims[1] == od))) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: a fused residual needs a second input shaped like the output",
                        node.name));
  }
  if (node.params.empty() || node.params.size() > 2) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: expected weight [, bias]", node.name));
  }
  const Param& w = in.param(0);
  const int64_t taps = static_cast<int64_t>(a.kernel_h) * a.kernel_w;
  if (w.shape != std::vector<int64_t>{c, 1, a.kernel_h, a.kernel_w} ||
      static_cast<int64_t>(w.data.size()) != c * taps) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: weight must be [%d, 1, %d, %d] with data", node.name, c, a.kernel_h,
                        a.kernel_w));
  }
  const float* bias = nullptr;
  if (node.params.size() == 2) {
    const Param& b = in.param(1);
    if (static_cast<int64_t>(b.data.size()) != c) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: bias must have %d values", node.name, c));
    }
    bias = b.data.data();
  }
  if (in.weights == nullptr) return absl::InvalidArgumentError("no weight cache");

  auto packed = in.weights->GetOrCreate<DwconvPackedWeights>(
      in.node_index, "dwconv", [&]() -> absl::StatusOr<std::shared_ptr<const DwconvPackedWeights>> {
        return std::make_shared<const DwconvPackedWeights>(
            DwconvPackedWeights::Pack(c, a.kernel_h, a.kernel_w, w.data.data(), bias));
      });
  if (!packed.ok()) return packed.status();

  DwconvParams p;
  p.in_h = id.h;
  p.in_w = id.w;
  p.channels = c;
  p.out_h = oh;
  p.out_w = ow;
  p.kernel_h = a.kernel_h;
  p.kernel_w = a.kernel_w;
  p.stride_h = a.stride_h;
  p.stride_w = a.stride_w;
  p.pad_top = a.pad_top;
  p.pad_left = a.pad_left;
  p.dilation_h = a.dilation_h;
  p.dilation_w = a.dilation_w;
  p.act = a.act;
  p.channel_norm = a.fused_channel_norm;
  p.norm_eps = a.norm_eps;

  // Bands of output rows: about 4 tiles per worker, whole images when there are enough of them.
  const int64_t rows = in.batch * oh;
  const int64_t target_tiles = in.num_threads > 1 ? 4 * static_cast<int64_t>(in.num_threads) : 1;
  const int64_t rows_per_tile = std::clamp<int64_t>((rows + target_tiles - 1) / target_tiles, 1, oh);
  const kernels::DwconvKernel kernel = kernels::GetDwconvKernel(
      in.isa, a.kernel_h, a.kernel_w, a.stride_h, a.stride_w, a.dilation_h, a.dilation_w);
  return std::make_unique<DepthwiseConvOp>(in, p, kernel, *std::move(packed), rows_per_tile);
}

}  // namespace visionserve::engine
