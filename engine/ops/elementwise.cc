// Element-wise ops: Activation, Add (+ activation), Mul (per-image channel scale broadcast over
// pixels) and ChannelScale (a per-channel parameter). All run in place when the output shares
// input 0's buffer: every kernel reads an element before writing the same element.

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/kernels/activation_kernels.h"
#include "engine/kernels/elementwise_kernels.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {

namespace {

// Rough floating-point operations of one activation, for plan reports.
int64_t ActivationFlops(Activation act) {
  switch (act) {
    case Activation::kNone:
      return 0;
    case Activation::kReLU:
      return 1;
    case Activation::kReLU6:
      return 2;
    case Activation::kHardSigmoid:
      return 3;
    case Activation::kHardSwish:
      return 4;
    case Activation::kSigmoid:
      return 15;
    case Activation::kSiLU:
      return 16;
    case Activation::kGELU:
      return 35;
  }
  return 0;
}

// Work units per tile: about 4 tiles per worker, none smaller than `min_units`; one tile for a
// single worker.
int64_t UnitsPerTile(int64_t units, int num_threads, int64_t min_units) {
  if (num_threads <= 1 || units <= min_units) return std::max<int64_t>(units, 1);
  const int64_t target = 4 * static_cast<int64_t>(num_threads);
  return std::clamp<int64_t>((units + target - 1) / target, min_units, units);
}

// Floats per tile of a flat element-wise pass: a multiple of 16 (whole cache lines, so tiles
// never write the same line), at least 32 KiB of output.
int64_t FlatChunk(int64_t total, int num_threads) {
  const int64_t chunk = UnitsPerTile(total, num_threads, 8192);
  return std::min(total, (chunk + 15) / 16 * 16);
}

// A contiguous run of floats split into tiles of `chunk_` floats.
class FlatOp : public Op {
 public:
  FlatOp(int64_t total, int64_t chunk) : total_(total), chunk_(std::max<int64_t>(chunk, 1)) {}
  int64_t NumTiles(int /*stage*/) const override { return (total_ + chunk_ - 1) / chunk_; }

 protected:
  // Calls run(offset, count) for each tile's range.
  template <typename Fn>
  void ForRanges(int64_t begin, int64_t end, Fn run) const {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t off = t * chunk_;
      run(off, std::min(chunk_, total_ - off));
    }
  }
  int64_t total_;
  int64_t chunk_;
};

class ActivationOp final : public FlatOp {
 public:
  ActivationOp(const OpPlanInput& in, Activation act, int64_t total)
      : FlatOp(total, FlatChunk(total, in.num_threads)),
        act_(act),
        fn_(kernels::GetActivationKernel(act, in.isa)),
        name_(kernels::ActivationKernelName(act, in.isa)),
        input_(in.inputs[0]),
        output_(in.output) {}

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* /*scratch*/) const override {
    const float* x = ctx.Resolve(input_);
    float* y = ctx.Resolve(output_);
    ForRanges(begin, end, [&](int64_t off, int64_t n) { fn_(x + off, y + off, n); });
  }
  int64_t Flops() const override { return total_ * ActivationFlops(act_); }
  std::string Describe() const override {
    return absl::StrFormat("activation %s %s tiles=%d", ActivationName(act_), name_, NumTiles(0));
  }

 private:
  Activation act_;
  kernels::ActivationFn fn_;
  std::string_view name_;
  BufferRef input_, output_;
};

class AddOp final : public FlatOp {
 public:
  AddOp(const OpPlanInput& in, Activation act, int64_t total)
      : FlatOp(total, FlatChunk(total, in.num_threads)),
        act_(act),
        kernels_(kernels::GetElementwiseKernels(in.isa)),
        a_(in.inputs[0]),
        b_(in.inputs[1]),
        output_(in.output) {}

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* /*scratch*/) const override {
    const float* a = ctx.Resolve(a_);
    const float* b = ctx.Resolve(b_);
    float* y = ctx.Resolve(output_);
    ForRanges(begin, end,
              [&](int64_t off, int64_t n) { kernels_.vadd(a + off, b + off, y + off, n, act_); });
  }
  int64_t Flops() const override { return total_ * (1 + ActivationFlops(act_)); }
  std::string Describe() const override {
    return absl::StrFormat("add%s%s %s tiles=%d", act_ == Activation::kNone ? "" : "+",
                           act_ == Activation::kNone ? "" : ActivationName(act_),
                           kernels_.vadd_name, NumTiles(0));
  }

 private:
  Activation act_;
  const kernels::ElementwiseKernels& kernels_;
  BufferRef a_, b_, output_;
};

// y[n][p][c] = x[n][p][c] · s(n)[c], tiles over (image, pixel range). The scale is either a
// per-image input (Mul) or a parameter shared by all images (ChannelScale).
class ScaleChannelsOp final : public Op {
 public:
  ScaleChannelsOp(const OpPlanInput& in, std::string_view what, const float* param_scale,
                  std::shared_ptr<const std::vector<float>> keep_alive)
      : what_(what),
        kernels_(kernels::GetElementwiseKernels(in.isa)),
        input_(in.inputs[0]),
        scale_(param_scale == nullptr ? in.inputs[1] : BufferRef{}),
        param_scale_(param_scale),
        param_(std::move(keep_alive)),
        output_(in.output),
        batch_(in.batch),
        pixels_(in.output_dims.h * in.output_dims.w),
        channels_(in.output_dims.c) {
    // Tiles never cross images (Mul's scale is per image): about 4 per worker over all
    // images, each at least 32 KiB of output.
    const int64_t min_pixels = std::max<int64_t>(1, 8192 / std::max<int64_t>(channels_, 1));
    const int64_t per_image_tiles_wanted =
        in.num_threads > 1
            ? std::max<int64_t>(1, (4 * static_cast<int64_t>(in.num_threads) + batch_ - 1) / batch_)
            : 1;
    pixels_per_tile_ =
        std::clamp<int64_t>((pixels_ + per_image_tiles_wanted - 1) / per_image_tiles_wanted,
                            std::min(min_pixels, pixels_), pixels_);
    tiles_per_image_ = (pixels_ + pixels_per_tile_ - 1) / pixels_per_tile_;
  }

  int64_t NumTiles(int /*stage*/) const override { return batch_ * tiles_per_image_; }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* /*scratch*/) const override {
    const float* x = ctx.Resolve(input_);
    const float* s = param_scale_ != nullptr ? param_scale_ : ctx.Resolve(scale_);
    float* y = ctx.Resolve(output_);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / tiles_per_image_;
      const int64_t p0 = (t % tiles_per_image_) * pixels_per_tile_;
      const int64_t count = std::min(pixels_per_tile_, pixels_ - p0);
      const int64_t off = (n * pixels_ + p0) * channels_;
      kernels_.vmulc(x + off, param_scale_ != nullptr ? s : s + n * channels_, y + off, count,
                     channels_);
    }
  }
  int64_t Flops() const override { return batch_ * pixels_ * channels_; }
  std::string Describe() const override {
    return absl::StrFormat("%s %s pixels/tile=%d tiles=%d", what_, kernels_.vmulc_name,
                           pixels_per_tile_, NumTiles(0));
  }

 private:
  std::string_view what_;
  const kernels::ElementwiseKernels& kernels_;
  BufferRef input_, scale_;
  const float* param_scale_;
  std::shared_ptr<const std::vector<float>> param_;
  BufferRef output_;
  int64_t batch_, pixels_, channels_;
  int64_t pixels_per_tile_ = 1, tiles_per_image_ = 1;
};

absl::Status CheckUnary(const OpPlanInput& in, size_t inputs) {
  if (in.input_dims.size() != inputs || in.inputs.size() != inputs) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s %s: expected %d inputs", OpTypeName(in.node().type), in.node().name, inputs));
  }
  if (!(in.input_dims[0] == in.output_dims)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s %s: output %s differs from input %s", OpTypeName(in.node().type),
                        in.node().name, in.output_dims.ToString(), in.input_dims[0].ToString()));
  }
  return absl::OkStatus();
}

}  // namespace

OpResult CreateActivationOp(const OpPlanInput& in) {
  if (absl::Status s = CheckUnary(in, 1); !s.ok()) return s;
  return std::make_unique<ActivationOp>(in, in.node().attr<ActivationAttrs>().act,
                                        in.batch * in.output_dims.elements());
}

OpResult CreateAddOp(const OpPlanInput& in) {
  if (absl::Status s = CheckUnary(in, 2); !s.ok()) return s;
  if (!(in.input_dims[1] == in.output_dims)) {
    return absl::InvalidArgumentError(absl::StrFormat("Add %s: operands differ (%s vs %s)",
                                                      in.node().name, in.input_dims[0].ToString(),
                                                      in.input_dims[1].ToString()));
  }
  return std::make_unique<AddOp>(in, in.node().attr<AddAttrs>().act,
                                 in.batch * in.output_dims.elements());
}

OpResult CreateMulOp(const OpPlanInput& in) {
  if (absl::Status s = CheckUnary(in, 2); !s.ok()) return s;
  const Dims& s = in.input_dims[1];
  if (s.h != 1 || s.w != 1 || s.c != in.output_dims.c) {
    return absl::InvalidArgumentError(absl::StrFormat("Mul %s: the scale must be 1x1x%d, got %s",
                                                      in.node().name, in.output_dims.c,
                                                      s.ToString()));
  }
  return std::make_unique<ScaleChannelsOp>(in, "mul", nullptr, nullptr);
}

OpResult CreateChannelScaleOp(const OpPlanInput& in) {
  if (absl::Status s = CheckUnary(in, 1); !s.ok()) return s;
  if (in.node().params.size() != 1 ||
      static_cast<int64_t>(in.param(0).data.size()) != in.output_dims.c) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ChannelScale %s: needs one scale parameter of %d values", in.node().name,
                        in.output_dims.c));
  }
  if (in.weights == nullptr) return absl::InvalidArgumentError("no weight cache");
  const Param& scale = in.param(0);
  auto packed = in.weights->GetOrCreate<std::vector<float>>(
      in.node_index, "channel_scale",
      [&]() -> absl::StatusOr<std::shared_ptr<const std::vector<float>>> {
        return std::make_shared<const std::vector<float>>(scale.data);
      });
  if (!packed.ok()) return packed.status();
  const float* values = (*packed)->data();
  return std::make_unique<ScaleChannelsOp>(in, "channel_scale", values, *std::move(packed));
}

}  // namespace visionserve::engine
