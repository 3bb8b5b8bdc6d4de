// Data-movement ops of detection necks: nearest-neighbour Upsample, channel Concat and channel
// Slice. All are copies of contiguous channel vectors (NHWC), so they run as memcpy per pixel;
// tiles are bands of output rows so a batch spreads over the workers.

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {

namespace {

// Rows per tile: about 4 tiles per worker, whole rows.
int64_t RowsPerTile(int64_t rows, int num_threads) {
  const int64_t target = 4 * static_cast<int64_t>(std::max(num_threads, 1));
  return std::max<int64_t>(1, (rows + target - 1) / target);
}

class UpsampleOp final : public Op {
 public:
  UpsampleOp(const OpPlanInput& in, const UpsampleAttrs& a)
      : input_(in.inputs[0]),
        output_(in.output),
        in_dims_(in.input_dims[0]),
        fh_(a.factor_h),
        fw_(a.factor_w),
        rows_(in.batch * in.input_dims[0].h),
        rows_per_tile_(RowsPerTile(rows_, in.num_threads)) {}

  int64_t NumTiles(int /*stage*/) const override {
    return (rows_ + rows_per_tile_ - 1) / rows_per_tile_;
  }

  // Input row r (image r / H, row r % H) becomes output rows r·fh … r·fh + fh − 1 (the batch's
  // output rows are consecutive too): the first is built pixel by pixel, the rest copy it.
  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* /*scratch*/) const override {
    const float* x = ctx.Resolve(input_);
    float* y = ctx.Resolve(output_);
    const int64_t c = in_dims_.c;
    const int64_t out_w = in_dims_.w * fw_;
    const size_t pixel_bytes = static_cast<size_t>(c) * sizeof(float);
    const size_t row_bytes = static_cast<size_t>(out_w) * pixel_bytes;
    for (int64_t r = begin * rows_per_tile_; r < std::min(rows_, end * rows_per_tile_); ++r) {
      const float* src = x + r * in_dims_.w * c;
      float* dst = y + r * fh_ * out_w * c;
      for (int64_t ix = 0; ix < in_dims_.w; ++ix) {
        for (int k = 0; k < fw_; ++k)
          std::memcpy(dst + (ix * fw_ + k) * c, src + ix * c, pixel_bytes);
      }
      for (int k = 1; k < fh_; ++k) std::memcpy(dst + k * out_w * c, dst, row_bytes);
    }
  }

  std::string Describe() const override {
    return absl::StrFormat("upsample nearest %dx%d rows/tile=%d tiles=%d", fh_, fw_, rows_per_tile_,
                           NumTiles(0));
  }

 private:
  BufferRef input_, output_;
  Dims in_dims_;
  int fh_, fw_;
  int64_t rows_, rows_per_tile_;
};

class ConcatOp final : public Op {
 public:
  explicit ConcatOp(const OpPlanInput& in)
      : inputs_(in.inputs),
        output_(in.output),
        out_c_(in.output_dims.c),
        rows_(in.batch * in.output_dims.h),
        width_(in.output_dims.w),
        rows_per_tile_(RowsPerTile(rows_, in.num_threads)) {
    for (const Dims& d : in.input_dims) channels_.push_back(d.c);
  }

  int64_t NumTiles(int /*stage*/) const override {
    return (rows_ + rows_per_tile_ - 1) / rows_per_tile_;
  }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* /*scratch*/) const override {
    float* y = ctx.Resolve(output_);
    const int64_t p0 = begin * rows_per_tile_ * width_;
    const int64_t p1 = std::min(rows_, end * rows_per_tile_) * width_;
    int64_t k0 = 0;
    for (size_t j = 0; j < inputs_.size(); ++j) {
      const float* x = ctx.Resolve(inputs_[j]);
      const int64_t c = channels_[j];
      const size_t bytes = static_cast<size_t>(c) * sizeof(float);
      for (int64_t p = p0; p < p1; ++p) std::memcpy(y + p * out_c_ + k0, x + p * c, bytes);
      k0 += c;
    }
  }

  std::string Describe() const override {
    return absl::StrFormat("concat %d inputs rows/tile=%d tiles=%d", inputs_.size(), rows_per_tile_,
                           NumTiles(0));
  }

 private:
  std::vector<BufferRef> inputs_;
  BufferRef output_;
  std::vector<int64_t> channels_;
  int64_t out_c_, rows_, width_, rows_per_tile_;
};

class SliceOp final : public Op {
 public:
  SliceOp(const OpPlanInput& in, const SliceAttrs& a)
      : input_(in.inputs[0]),
        output_(in.output),
        in_c_(in.input_dims[0].c),
        begin_(a.begin),
        out_c_(in.output_dims.c),
        rows_(in.batch * in.output_dims.h),
        width_(in.output_dims.w),
        rows_per_tile_(RowsPerTile(rows_, in.num_threads)) {}

  int64_t NumTiles(int /*stage*/) const override {
    return (rows_ + rows_per_tile_ - 1) / rows_per_tile_;
  }

  void RunTiles(int /*stage*/, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* /*scratch*/) const override {
    const float* x = ctx.Resolve(input_) + begin_;
    float* y = ctx.Resolve(output_);
    const int64_t p0 = begin * rows_per_tile_ * width_;
    const int64_t p1 = std::min(rows_, end * rows_per_tile_) * width_;
    const size_t bytes = static_cast<size_t>(out_c_) * sizeof(float);
    for (int64_t p = p0; p < p1; ++p) std::memcpy(y + p * out_c_, x + p * in_c_, bytes);
  }

  std::string Describe() const override {
    return absl::StrFormat("slice channels [%d, %d) of %d rows/tile=%d tiles=%d", begin_,
                           begin_ + out_c_, in_c_, rows_per_tile_, NumTiles(0));
  }

 private:
  BufferRef input_, output_;
  int64_t in_c_, begin_, out_c_, rows_, width_, rows_per_tile_;
};

}  // namespace

OpResult CreateSliceOp(const OpPlanInput& in) {
  const Node& node = in.node();
  if (in.input_dims.size() != 1 || in.inputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrFormat("Slice %s: expects one input", node.name));
  }
  const auto& a = node.attr<SliceAttrs>();
  const Dims& id = in.input_dims[0];
  if (a.begin < 0 || a.begin >= a.end || a.end > id.c ||
      !(in.output_dims == Dims{id.h, id.w, a.end - a.begin})) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Slice %s: channels [%d, %d) of %s do not give %s", node.name, a.begin,
                        a.end, id.ToString(), in.output_dims.ToString()));
  }
  return std::make_unique<SliceOp>(in, a);
}

OpResult CreateUpsampleOp(const OpPlanInput& in) {
  const Node& node = in.node();
  if (in.input_dims.size() != 1 || in.inputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrFormat("Upsample %s: expects one input", node.name));
  }
  const auto& a = node.attr<UpsampleAttrs>();
  const Dims& id = in.input_dims[0];
  if (a.factor_h < 1 || a.factor_w < 1 ||
      !(in.output_dims == Dims{id.h * a.factor_h, id.w * a.factor_w, id.c})) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Upsample %s: output %s does not match the factors", node.name, in.output_dims.ToString()));
  }
  return std::make_unique<UpsampleOp>(in, a);
}

OpResult CreateConcatOp(const OpPlanInput& in) {
  const Node& node = in.node();
  if (in.input_dims.empty() || in.input_dims.size() != in.inputs.size()) {
    return absl::InvalidArgumentError(absl::StrFormat("Concat %s: needs inputs", node.name));
  }
  int64_t c = 0;
  for (const Dims& d : in.input_dims) {
    if (d.h != in.output_dims.h || d.w != in.output_dims.w) {
      return absl::InvalidArgumentError(
          absl::StrFormat("Concat %s: input %s does not match output %s", node.name, d.ToString(),
                          in.output_dims.ToString()));
    }
    c += d.c;
  }
  if (c != in.output_dims.c) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Concat %s: channels do not add up", node.name));
  }
  return std::make_unique<ConcatOp>(in);
}

}  // namespace visionserve::engine
