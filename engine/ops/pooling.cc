// GlobalAvgPool (N×H×W×C → N×1×1×C; tiles are (image, channel block)) and MaxPool (k×k, stride,
// −inf padding as torch; tiles are (image, band of output rows)).

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/kernels/pooling_kernels.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {

namespace {

class GlobalAvgPoolOp final : public Op {
 public:
  GlobalAvgPoolOp(const OpPlanInput& in, int64_t channels_per_tile)
      : kernels_(kernels::GetPoolingKernels(in.isa)),
        input_(in.inputs[0]),
        output_(in.output),
        batch_(in.batch),
        pixels_(in.input_dims[0].h * in.input_dims[0].w),
        channels_(in.input_dims[0].c),
        channels_per_tile_(channels_per_tile),
        blocks_((channels_ + channels_per_tile - 1) / channels_per_tile) {}

  int64_t NumTiles(int /*stage*/) const override { return batch_ * blocks_; }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* /*scratch*/) const override {
    const float* x = ctx.Resolve(input_);
    float* y = ctx.Resolve(output_);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / blocks_;
      const int64_t c0 = (t % blocks_) * channels_per_tile_;
      const int64_t count = std::min(channels_per_tile_, channels_ - c0);
      kernels_.gavgpool(x + n * pixels_ * channels_ + c0, pixels_, channels_, count,
                        y + n * channels_ + c0);
    }
  }

  int64_t Flops() const override { return batch_ * pixels_ * channels_; }

  std::string Describe() const override {
    return absl::StrFormat("global_avg_pool %s channels/tile=%d tiles=%d", kernels_.gavgpool_name,
                           channels_per_tile_, NumTiles(0));
  }

 private:
  const kernels::PoolingKernels& kernels_;
  BufferRef input_, output_;
  int64_t batch_, pixels_, channels_, channels_per_tile_, blocks_;
};

class MaxPoolOp final : public Op {
 public:
  MaxPoolOp(const OpPlanInput& in, const kernels::MaxPoolParams& p, int64_t rows_per_tile)
      : kernels_(kernels::GetPoolingKernels(in.isa)),
        params_(p),
        input_(in.inputs[0]),
        output_(in.output),
        batch_(in.batch),
        rows_per_tile_(rows_per_tile),
        bands_((p.out_h + rows_per_tile - 1) / rows_per_tile) {}

  int64_t NumTiles(int /*stage*/) const override { return batch_ * bands_; }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* /*scratch*/) const override {
    const float* x = ctx.Resolve(input_);
    float* y = ctx.Resolve(output_);
    const int64_t in_image = params_.in_h * params_.in_w * params_.channels;
    const int64_t out_image = params_.out_h * params_.out_w * params_.channels;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / bands_;
      const int64_t oy0 = (t % bands_) * rows_per_tile_;
      kernels_.maxpool(params_, x + n * in_image, y + n * out_image, oy0,
                       std::min(params_.out_h, oy0 + rows_per_tile_));
    }
  }

  // One comparison per tap.
  int64_t Flops() const override {
    return batch_ * params_.out_h * params_.out_w * params_.channels * params_.kernel_h *
           params_.kernel_w;
  }

  std::string Describe() const override {
    return absl::StrFormat("maxpool %dx%d s%d %s rows/tile=%d tiles=%d", params_.kernel_h,
                           params_.kernel_w, params_.stride_h, kernels_.maxpool_name,
                           rows_per_tile_, NumTiles(0));
  }

 private:
  const kernels::PoolingKernels& kernels_;
  kernels::MaxPoolParams params_;
  BufferRef input_, output_;
  int64_t batch_, rows_per_tile_, bands_;
};

}  // namespace

OpResult CreateGlobalAvgPoolOp(const OpPlanInput& in) {
  if (in.input_dims.size() != 1 || in.inputs.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GlobalAvgPool %s: expects one input", in.node().name));
  }
  const Dims& id = in.input_dims[0];
  if (!(in.output_dims == Dims{1, 1, id.c})) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GlobalAvgPool %s: output must be 1x1x%d, got %s", in.node().name, id.c,
                        in.output_dims.ToString()));
  }
  // Whole images when there are enough of them; otherwise channel blocks (multiples of 16, at
  // least 64 channels and 32 KiB of input) for about 4 tiles per worker.
  int64_t per_tile = id.c;
  const int64_t target = 4 * static_cast<int64_t>(std::max(in.num_threads, 1));
  if (in.num_threads > 1 && in.batch < target) {
    const int64_t blocks = (target + in.batch - 1) / in.batch;
    const int64_t min_c =
        (std::max<int64_t>(64, 8192 / std::max<int64_t>(id.h * id.w, 1)) + 15) / 16 * 16;
    per_tile = (id.c + blocks - 1) / blocks;
    per_tile = std::clamp<int64_t>((per_tile + 15) / 16 * 16, std::min(min_c, id.c), id.c);
  }
  return std::make_unique<GlobalAvgPoolOp>(in, per_tile);
}

OpResult CreateMaxPoolOp(const OpPlanInput& in) {
  const Node& node = in.node();
  if (in.input_dims.size() != 1 || in.inputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrFormat("MaxPool %s: expects one input", node.name));
  }
  const auto& a = node.attr<MaxPoolAttrs>();
  if (a.kernel_h < 1 || a.kernel_w < 1 || a.stride_h < 1 || a.stride_w < 1 || a.pad_top < 0 ||
      a.pad_left < 0 || a.pad_bottom < 0 || a.pad_right < 0 || a.pad_top >= a.kernel_h ||
      a.pad_bottom >= a.kernel_h || a.pad_left >= a.kernel_w || a.pad_right >= a.kernel_w) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "MaxPool %s: bad kernel, stride or padding (padding must be smaller than the kernel)",
        node.name));
  }
  const Dims& id = in.input_dims[0];
  const int64_t oh = (id.h + a.pad_top + a.pad_bottom - a.kernel_h) / a.stride_h + 1;
  const int64_t ow = (id.w + a.pad_left + a.pad_right - a.kernel_w) / a.stride_w + 1;
  if (oh < 1 || ow < 1 || !(in.output_dims == Dims{oh, ow, id.c})) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "MaxPool %s: output %s does not match the geometry", node.name, in.output_dims.ToString()));
  }
  kernels::MaxPoolParams p;
  p.in_h = id.h;
  p.in_w = id.w;
  p.channels = id.c;
  p.out_h = oh;
  p.out_w = ow;
  p.kernel_h = a.kernel_h;
  p.kernel_w = a.kernel_w;
  p.stride_h = a.stride_h;
  p.stride_w = a.stride_w;
  p.pad_top = a.pad_top;
  p.pad_left = a.pad_left;
  int64_t rows_per_tile = oh;
  if (in.num_threads > 1) {
    const int64_t target = 4 * static_cast<int64_t>(in.num_threads);
    rows_per_tile = std::clamp<int64_t>((in.batch * oh + target - 1) / target, 1, oh);
  }
  return std::make_unique<MaxPoolOp>(in, p, rows_per_tile);
}

}  // namespace visionserve::engine
