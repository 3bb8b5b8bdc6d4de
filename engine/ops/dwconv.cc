// Depthwise k×k convolution (a Conv2D with groups == Cin == Cout), with the fused epilogue
// (bias, residual, activation) and optionally the fused channel norm. Each tile runs one dwconv
// microkernel call.

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/kernels/dwconv.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {

namespace {

using kernels::DwconvPackedWeights;
using kernels::DwconvParams;

// Tiles are (image, band of output rows, group of channels), channel groups fastest. Channel
// groups cost nothing extra; row bands re-stage the kernel's halo rows, so they are only used
// when channel groups alone do not give enough tiles (or with the channel norm, which needs
// every channel of a pixel in one tile).
struct DwconvTiling {
  int64_t rows_per_tile = 1;
  int64_t bands = 1;
  int64_t channels_per_tile = 1;
  int64_t groups = 1;
};

DwconvTiling PlanDwconvTiling(const DwconvParams& p, int64_t batch, int num_threads) {
  DwconvTiling t;
  t.rows_per_tile = p.out_h;
  t.channels_per_tile = p.channels;
  if (num_threads > 1) {
    const int64_t target = 4 * static_cast<int64_t>(num_threads);
    const int64_t per_image = (target + batch - 1) / batch;
    // At least 64 channels per group (whole AVX-512 lines, a few channel blocks per call).
    const int64_t max_groups = p.channel_norm ? 1 : std::max<int64_t>(1, p.channels / 64);
    t.groups = std::min(per_image, max_groups);
    const int64_t bands = std::min(p.out_h, (per_image + t.groups - 1) / t.groups);
    t.rows_per_tile = (p.out_h + bands - 1) / bands;
    const int64_t per_group = (p.channels + t.groups - 1) / t.groups;
    t.channels_per_tile =
        std::min(p.channels, (per_group + kernels::kDwconvChannelAlign - 1) /
                                 kernels::kDwconvChannelAlign * kernels::kDwconvChannelAlign);
  }
  t.bands = (p.out_h + t.rows_per_tile - 1) / t.rows_per_tile;
  t.groups = (p.channels + t.channels_per_tile - 1) / t.channels_per_tile;
  return t;
}

class DepthwiseConvOp final : public Op {
 public:
  DepthwiseConvOp(const OpPlanInput& in, const DwconvParams& p, kernels::DwconvKernel kernel,
                  std::shared_ptr<const DwconvPackedWeights> weights, const DwconvTiling& tiling)
      : params_(p),
        kernel_(kernel),
        weights_(std::move(weights)),
        input_(in.inputs[0]),
        residual_(in.node().attr<Conv2DAttrs>().fused_residual ? in.inputs[1] : BufferRef{}),
        has_residual_(in.node().attr<Conv2DAttrs>().fused_residual),
        output_(in.output),
        batch_(in.batch),
        tiling_(tiling) {}

  int64_t NumTiles(int /*stage*/) const override { return batch_ * tiling_.bands * tiling_.groups; }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* scratch) const override {
    const float* in = ctx.Resolve(input_);
    const float* res = has_residual_ ? ctx.Resolve(residual_) : nullptr;
    float* out = ctx.Resolve(output_);
    const int64_t in_image = params_.in_h * params_.in_w * params_.channels;
    const int64_t out_image = params_.out_h * params_.out_w * params_.channels;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t group = t % tiling_.groups;
      const int64_t band = t / tiling_.groups % tiling_.bands;
      const int64_t n = t / tiling_.groups / tiling_.bands;
      kernels::DwconvRange range;
      range.oy_begin = band * tiling_.rows_per_tile;
      range.oy_end = std::min(params_.out_h, range.oy_begin + tiling_.rows_per_tile);
      range.c_begin = group * tiling_.channels_per_tile;
      range.c_end = std::min(params_.channels, range.c_begin + tiling_.channels_per_tile);
      kernel_.fn(params_, in + n * in_image, weights_->weights(), weights_->bias(),
                 res != nullptr ? res + n * out_image : nullptr, out + n * out_image, range,
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
    const std::string epilogue = absl::StrFormat(
        "%s%s%s%s", has_residual_ ? "+residual" : "", act ? "+" : "",
        act ? ActivationName(params_.act) : "", params_.channel_norm ? "+norm" : "");
    return absl::StrFormat("dwconv %dx%d s%d%s %s rows/tile=%d channels/tile=%d tiles=%d",
                           params_.kernel_h, params_.kernel_w, params_.stride_h, epilogue,
                           kernel_.name, tiling_.rows_per_tile, tiling_.channels_per_tile,
                           NumTiles(0));
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
  DwconvTiling tiling_;
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
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: not depthwise (groups %d, in %d, out %d channels)", node.name,
                        a.groups, c, a.out_channels));
  }
  if (a.kernel_h < 1 || a.kernel_w < 1 || a.stride_h < 1 || a.stride_w < 1 || a.dilation_h < 1 ||
      a.dilation_w < 1 || a.pad_top < 0 || a.pad_left < 0 || a.pad_bottom < 0 || a.pad_right < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: bad kernel, stride, dilation or padding", node.name));
  }
  const int64_t oh = ConvOut(id.h, a.kernel_h, a.stride_h, a.pad_top, a.pad_bottom, a.dilation_h);
  const int64_t ow = ConvOut(id.w, a.kernel_w, a.stride_w, a.pad_left, a.pad_right, a.dilation_w);
  if (od.h != oh || od.w != ow || od.c != c || oh < 1 || ow < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: output %s does not match the geometry (%dx%dx%d)", node.name,
                        od.ToString(), oh, ow, c));
  }
  if (a.fused_residual && (in.input_dims.size() != 2 || !(in.input_dims[1] == od))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: a fused residual needs a second input shaped like the output", node.name));
  }
  if (node.params.empty() || node.params.size() > 2) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: expected weight [, bias]", node.name));
  }
  const Param& w = in.param(0);
  const int64_t taps = static_cast<int64_t>(a.kernel_h) * a.kernel_w;
  if (w.shape != std::vector<int64_t>{c, 1, a.kernel_h, a.kernel_w} ||
      static_cast<int64_t>(w.data.size()) != c * taps) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: weight must be [%d, 1, %d, %d] with data", node.name, c, a.kernel_h, a.kernel_w));
  }
  const float* bias = nullptr;
  if (node.params.size() == 2) {
    const Param& b = in.param(1);
    if (static_cast<int64_t>(b.data.size()) != c) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: bias must have %d values", node.name, c));
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

  const kernels::DwconvKernel kernel = kernels::GetDwconvKernel(
      in.isa, a.kernel_h, a.kernel_w, a.stride_h, a.stride_w, a.dilation_h, a.dilation_w);
  return std::make_unique<DepthwiseConvOp>(in, p, kernel, *std::move(packed),
                                           PlanDwconvTiling(p, in.batch, in.num_threads));
}

}  // namespace visionserve::engine
