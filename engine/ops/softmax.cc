// Softmax over the channels of every pixel (the classifier's 1×1×C logits), max-subtracted for
// stability. Tiles are runs of pixels; in place is fine (each row is read before it is written).

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/kernels/normalization_kernels.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {

namespace {

class SoftmaxOp final : public Op {
 public:
  SoftmaxOp(const OpPlanInput& in, int64_t rows_per_tile)
      : kernels_(kernels::GetNormalizationKernels(in.isa)),
        input_(in.inputs[0]),
        output_(in.output),
        rows_(in.batch * in.output_dims.h * in.output_dims.w),
        channels_(in.output_dims.c),
        rows_per_tile_(rows_per_tile) {}

  int64_t NumTiles(int /*stage*/) const override {
    return (rows_ + rows_per_tile_ - 1) / rows_per_tile_;
  }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* /*scratch*/) const override {
    const float* x = ctx.Resolve(input_);
    float* y = ctx.Resolve(output_);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t r0 = t * rows_per_tile_;
      const int64_t count = std::min(rows_per_tile_, rows_ - r0);
      kernels_.softmax(x + r0 * channels_, y + r0 * channels_, count, channels_);
    }
  }

  // Max, subtract, exp (~12), sum, scale per element.
  int64_t Flops() const override { return 16 * rows_ * channels_; }

  std::string Describe() const override {
    return absl::StrFormat("softmax C=%d %s rows/tile=%d tiles=%d", channels_,
                           kernels_.softmax_name, rows_per_tile_, NumTiles(0));
  }

 private:
  const kernels::NormalizationKernels& kernels_;
  BufferRef input_, output_;
  int64_t rows_, channels_, rows_per_tile_;
};

}  // namespace

OpResult CreateSoftmaxOp(const OpPlanInput& in) {
  if (in.input_dims.size() != 1 || in.inputs.size() != 1 || !(in.input_dims[0] == in.output_dims)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Softmax %s: expects one input shaped like the output", in.node().name));
  }
  const int64_t rows = in.batch * in.output_dims.h * in.output_dims.w;
  int64_t per_tile = rows;
  if (in.num_threads > 1) {
    const int64_t target = 4 * static_cast<int64_t>(in.num_threads);
    const int64_t min_rows = std::max<int64_t>(1, 8192 / in.output_dims.c);
    per_tile = std::clamp<int64_t>((rows + target - 1) / target, std::min(min_rows, rows), rows);
  }
  return std::make_unique<SoftmaxOp>(in, per_tile);
}

}  // namespace visionserve::engine
