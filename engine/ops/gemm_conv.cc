// GEMM-based ops: pointwise (1×1) convs and linears as one GEMM over NHWC rows, and every other
// non-depthwise conv (dense k×k, strided, dilated, grouped) as a GEMM over patches, read in place
// through an indirection buffer (indirect GEMM) or, for strided 1×1 convs, copied (im2col).
//
// Weights are packed once per node and kernel set through the WeightCache; plans for every
// batch size share them. Tiles are (rows of output pixels) × (column blocks); each tile runs
// the GEMM driver over all of K with the epilogue (bias, residual, activation) fused.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "engine/kernels/gemm.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {
namespace {

using kernels::GemmConfig;
using kernels::GemmEpilogue;
using kernels::GemmPackedWeights;
using kernels::GemmTileArgs;
using kernels::GemmTiling;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Work below which splitting a stage further costs more in hand-offs than it gains.
constexpr double kMinChunkFlops = 1e6;

// Tiles per parallel chunk: whole tiles for one worker; otherwise chunks of at least
// kMinChunkFlops while leaving about two chunks per worker.
int64_t ChooseGrain(int64_t tiles, double tile_flops, int num_threads) {
  if (num_threads <= 1) return std::max<int64_t>(tiles, 1);
  const int64_t by_work = static_cast<int64_t>(kMinChunkFlops / std::max(tile_flops, 1.0)) + 1;
  const int64_t cap = std::max<int64_t>(tiles / (2 * int64_t{num_threads}), 1);
  return std::clamp<int64_t>(by_work, 1, cap);
}

// Whether the driver should copy A rows to a padded stride first: when rows are a multiple of
// 4 KiB apart, all rows of a micro-tile map to one L1 set. Worth it only with enough panels to
// reuse the copy.
bool ShouldCopyA(const GemmConfig& config, int64_t lda, int64_t n) {
  return lda % 1024 == 0 && CeilDiv(n, config.nr) >= 4;
}

absl::Status CheckParam(const OpPlanInput& in, int index, int64_t numel, const char* what) {
  if (static_cast<int>(in.node().params.size()) <= index) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: missing %s", in.node().name, what));
  }
  const Param& p = in.param(index);
  if (p.numel() != numel || static_cast<int64_t>(p.data.size()) != numel) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %s %s has %d values (shape numel %d), expected %d", in.node().name,
                        what, p.name, p.data.size(), p.numel(), numel));
  }
  return absl::OkStatus();
}

absl::Status CheckCommon(const OpPlanInput& in, bool fused_residual) {
  if (in.graph == nullptr || in.weights == nullptr) {
    return absl::InvalidArgumentError("GEMM op planned without a graph or weight cache");
  }
  const size_t want_inputs = fused_residual ? 2 : 1;
  if (in.input_dims.size() != want_inputs || in.inputs.size() != want_inputs ||
      in.node().inputs.size() != want_inputs) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: expected %d input(s), got %d dims / %d buffers / %d node inputs", in.node().name,
        want_inputs, in.input_dims.size(), in.inputs.size(), in.node().inputs.size()));
  }
  if (fused_residual && in.input_dims[1] != in.output_dims) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: residual dims %s differ from output dims %s", in.node().name,
                        in.input_dims[1].ToString(), in.output_dims.ToString()));
  }
  if (in.batch < 1 || in.input_dims[0].elements() < 1 || in.output_dims.elements() < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: empty input or output", in.node().name));
  }
  return absl::OkStatus();
}

std::string WeightTag(const GemmConfig& config, int64_t groups_per_gemm) {
  return absl::StrFormat("gemm_b:%s:g%d", config.name, groups_per_gemm);
}

// ---------------------------------------------------------------------------------------------
// One GEMM over all rows: pointwise conv (M = batch·H·W) and linear (M = batch).

class DenseGemmOp final : public Op {
 public:
  struct Setup {
    std::string kind;  // "pointwise" or "linear", for Describe()
    const GemmConfig* config = nullptr;
    std::shared_ptr<const GemmPackedWeights> weights;
    GemmEpilogue epilogue;
    int64_t m = 0, n = 0, k = 0;
    BufferRef input, output, residual;
    bool has_residual = false;
    int num_threads = 1;
  };

  explicit DenseGemmOp(Setup s) : s_(std::move(s)) {
    tiling_ = kernels::PlanGemmTiling(*s_.config, s_.m, s_.n, s_.k, s_.num_threads,
                                      kernels::GemmTileWidth::kAllColumns);
    copy_a_ = ShouldCopyA(*s_.config, s_.k, s_.n);
    // With scratch, GemmTile packs A when the kernel set can (and copy_a_ is moot).
    use_scratch_ = copy_a_ || s_.config->packs_a();
    const double tile_flops = 2.0 * tiling_.m_tile * tiling_.n_tile * s_.k;
    grain_ = ChooseGrain(tiling_.tiles(), tile_flops, s_.num_threads);
  }

  int64_t NumTiles(int) const override { return tiling_.tiles(); }
  int64_t Grain(int) const override { return grain_; }
  size_t ScratchBytes() const override {
    return use_scratch_
               ? kernels::GemmTileScratchFloats(*s_.config, tiling_.m_tile, s_.k) * sizeof(float)
               : 0;
  }
  int64_t Flops() const override { return 2 * s_.m * s_.n * s_.k; }

  std::string Describe() const override {
    return absl::StrFormat("gemm %s %s M=%d N=%d K=%d tiles=%d (%dx%d) kc=%d grain=%d%s", s_.kind,
                           s_.config->name, s_.m, s_.n, s_.k, tiling_.tiles(), tiling_.m_tile,
                           tiling_.n_tile, kernels::GemmKBlock(*s_.config, s_.k), grain_,
                           copy_a_ ? " copy_a" : "");
  }

  void RunTiles(int, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* scratch) const override {
    const float* x = ctx.Resolve(s_.input);
    float* y = ctx.Resolve(s_.output);
    const float* r = s_.has_residual ? ctx.Resolve(s_.residual) : nullptr;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t m0 = t / tiling_.n_tiles * tiling_.m_tile;
      const int64_t n0 = t % tiling_.n_tiles * tiling_.n_tile;
      GemmTileArgs args;
      args.m = std::min(tiling_.m_tile, s_.m - m0);
      args.n_begin = n0;
      args.n_end = std::min(n0 + tiling_.n_tile, s_.n);
      args.a = x + m0 * s_.k;
      args.lda = s_.k;
      args.copy_a = copy_a_;
      args.c = y + m0 * s_.n;
      args.ldc = s_.n;
      args.residual = r != nullptr ? r + m0 * s_.n : nullptr;
      args.ldr = s_.n;
      kernels::GemmTile(*s_.config, *s_.weights, s_.epilogue, args,
                        use_scratch_ ? reinterpret_cast<float*>(scratch) : nullptr);
    }
  }

 private:
  Setup s_;
  GemmTiling tiling_;
  bool copy_a_ = false;
  bool use_scratch_ = false;
  int64_t grain_ = 1;
};

// Packs [N][K] weights (+ bias) for `config`, once per node and kernel set.
absl::StatusOr<std::shared_ptr<const GemmPackedWeights>> GetDenseWeights(const OpPlanInput& in,
                                                                         const GemmConfig& config,
                                                                         int64_t n, int64_t k,
                                                                         bool has_bias) {
  const Param& w = in.param(0);
  const float* bias = has_bias ? in.param(1).data.data() : nullptr;
  return in.weights->GetOrCreate<GemmPackedWeights>(
      in.node_index, WeightTag(config, 1),
      [&]() -> absl::StatusOr<std::shared_ptr<const GemmPackedWeights>> {
        return std::make_shared<const GemmPackedWeights>(
            GemmPackedWeights::Pack(config, n, k, w.data.data(), k, bias));
      });
}

// ---------------------------------------------------------------------------------------------
// General conv: a GEMM over patches (order ky, kx, ci) of a tile of output pixels, read either
// through an indirection buffer of pixel pointers (indirect GEMM) or from an im2col copy.
//
// Groups are batched: `gpg` consecutive groups form one GEMM whose B is block-diagonal (zeros
// across groups) when a group is at most half a vector wide. The kernel computes a whole vector
// of columns anyway, so the zeros cost no extra lanes, and there are gpg times fewer kernel
// calls and pointer setups.

struct ConvGeometry {
  int64_t batch = 0, h = 0, w = 0, c = 0;  // input
  int64_t oh = 0, ow = 0, oc = 0;          // output
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0;
};

struct GroupedPackedWeights {
  int64_t groups_per_gemm = 1;
  std::vector<GemmPackedWeights> gemms;  // one per batch of groups
};

// What the im2col fetch callback needs for one tile and one batch of groups.
struct Im2colContext {
  const ConvGeometry* g;
  const RunContext* run;  // the input: image b at run->ResolveImage(*input, b, h·w·c)
  const BufferRef* input;
  int64_t row0;  // first output pixel (flattened b, oy, ox) of the tile
  int64_t c0;    // first input channel of the batch of groups
  int64_t cg;    // input channels per patch tap
};

// Writes patch columns [k0, k0 + kc) of output pixels row0 .. row0 + m - 1 into buf.
kernels::GemmABlock Im2colFetch(const void* ctx_ptr, int64_t m, int64_t k0, int64_t kc, float* buf,
                                int64_t buf_stride) {
  const auto& ctx = *static_cast<const Im2colContext*>(ctx_ptr);
  const ConvGeometry& g = *ctx.g;
  const int64_t cg = ctx.cg;
  const int64_t k1 = k0 + kc;
  // With all channels per tap and no horizontal dilation, consecutive kx taps are contiguous.
  const bool row_runs = cg == g.c && g.dw == 1;
  int64_t pixel = ctx.row0;
  int64_t b = pixel / (g.oh * g.ow);
  int64_t oy = pixel / g.ow % g.oh;
  int64_t ox = pixel % g.ow;
  const int64_t image_floats = g.h * g.w * g.c;
  const float* image = ctx.run->ResolveImage(*ctx.input, b, image_floats) + ctx.c0;
  for (int64_t i = 0; i < m; ++i) {
    float* row = buf + i * buf_stride;  // column k lands at row[k - k0]
    const int64_t iy0 = oy * g.sh - g.pt;
    const int64_t ix0 = ox * g.sw - g.pl;
    int64_t k = k0;
    while (k < k1) {
      const int64_t tap = k / cg;
      const int64_t ci = k - tap * cg;
      const int64_t ky = tap / g.kw;
      const int64_t kx = tap - ky * g.kw;
      const int64_t iy = iy0 + ky * g.dh;
      const int64_t ix = ix0 + kx * g.dw;
      int64_t run_end;
      if (iy < 0 || iy >= g.h) {
        run_end = std::min(k1, (ky + 1) * g.kw * cg);  // the rest of this kernel row
        std::memset(row + (k - k0), 0, static_cast<size_t>(run_end - k) * sizeof(float));
      } else if (ix < 0 || ix >= g.w) {
        run_end = std::min(k1, (tap + 1) * cg);
        std::memset(row + (k - k0), 0, static_cast<size_t>(run_end - k) * sizeof(float));
      } else {
        const int64_t kx_end = row_runs ? std::min<int64_t>(g.kw, kx + (g.w - ix)) : kx + 1;
        run_end = std::min(k1, (ky * g.kw + kx_end) * cg);
        std::memcpy(row + (k - k0), image + (iy * g.w + ix) * g.c + ci,
                    static_cast<size_t>(run_end - k) * sizeof(float));
      }
      k = run_end;
    }
    if (++ox == g.ow) {
      ox = 0;
      if (++oy == g.oh) {
        oy = 0;
        if (++b * g.oh * g.ow < ctx.row0 + m) {
          image = ctx.run->ResolveImage(*ctx.input, b, image_floats) + ctx.c0;
        }
      }
    }
  }
  return {buf, buf_stride};
}

class ConvGemmOp final : public Op {
 public:
  struct Setup {
    const GemmConfig* config = nullptr;
    std::shared_ptr<const GroupedPackedWeights> weights;
    Activation act = Activation::kNone;
    ConvGeometry geo;
    int64_t groups = 1;
    // A through an indirection buffer of input pixel pointers (no copies) instead of im2col.
    bool indirect = false;
    BufferRef input, output, residual;
    bool has_residual = false;
    int num_threads = 1;
  };

  explicit ConvGemmOp(Setup s) : s_(std::move(s)) {
    const ConvGeometry& g = s_.geo;
    m_ = g.batch * g.oh * g.ow;
    gpg_ = s_.weights->groups_per_gemm;
    num_gemms_ = s_.groups / gpg_;
    gemm_n_ = g.oc / s_.groups * gpg_;
    cg_ = g.c / s_.groups * gpg_;
    gemm_k_ = g.kh * g.kw * cg_;
    const int64_t total_cols = num_gemms_ * gemm_n_;
    GemmTiling t = kernels::PlanGemmTiling(*s_.config, m_, total_cols, gemm_k_, s_.num_threads);
    m_tile_ = t.m_tile;
    m_tiles_ = t.m_tiles;
    if (num_gemms_ == 1) {
      n_tile_ = t.n_tile;
      n_blocks_ = t.n_tiles;
    } else {
      // Column blocks are whole batches of groups; as many blocks as the tiling asked for.
      gemms_per_block_ = CeilDiv(num_gemms_, std::min(t.n_tiles, num_gemms_));
      n_blocks_ = CeilDiv(num_gemms_, gemms_per_block_);
    }
    // With several GEMMs per tile the activation runs once over the tile's rows at the end;
    // with one, the driver runs it per row block while the rows are in L1.
    const GemmEpilogue full = kernels::MakeGemmEpilogue(s_.act, s_.config->isa);
    post_ = num_gemms_ > 1 ? full.post : nullptr;
    epilogue_ = full;
    if (post_ != nullptr) epilogue_.post = nullptr;
    const double tile_flops = 2.0 * m_tile_ * (total_cols / n_blocks_) * gemm_k_;
    grain_ = ChooseGrain(NumTiles(0), tile_flops, s_.num_threads);
    if (s_.indirect) zeros_.assign(static_cast<size_t>(cg_), 0.f);
  }

  int64_t NumTiles(int) const override { return m_tiles_ * n_blocks_; }
  int64_t Grain(int) const override { return grain_; }
  size_t ScratchBytes() const override {
    if (s_.indirect) {
      const int64_t mr = s_.config->mr;
      return static_cast<size_t>(CeilDiv(m_tile_, mr) * mr * s_.geo.kh * s_.geo.kw) *
             sizeof(const float*);
    }
    return kernels::GemmTileScratchFloats(*s_.config, m_tile_, gemm_k_) * sizeof(float);
  }
  int64_t Flops() const override {
    const ConvGeometry& g = s_.geo;
    return 2 * m_ * g.oc * g.kh * g.kw * (g.c / s_.groups);
  }

  std::string Describe() const override {
    const ConvGeometry& g = s_.geo;
    const int64_t kc = s_.indirect ? kernels::IgemmTapsPerBlock(*s_.config, cg_) * cg_
                                   : kernels::GemmKBlock(*s_.config, gemm_k_);
    return absl::StrFormat(
        "%s %s %dx%d/s%dx%d/d%dx%d groups=%d (%d per gemm, %d gemms) M=%d N=%d K=%d "
        "tiles=%d (%d rows x %d col blocks) kc=%d grain=%d",
        s_.indirect ? "igemm" : "im2col-gemm",
        s_.indirect ? s_.config->igemm_name : s_.config->name, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw,
        s_.groups, gpg_, num_gemms_, m_, gemm_n_, gemm_k_, NumTiles(0), m_tile_, n_blocks_,
        std::min(kc, gemm_k_), grain_);
  }

  // The input is read image by image (im2col and the indirection buffer both find a pixel's
  // image first), so a run can pass the caller's images in place.
  bool ReadsInputByImage() const override {
    return !(s_.has_residual && s_.residual.kind == BufferRef::Kind::kInput);
  }

  void RunTiles(int, int64_t begin, int64_t end, const RunContext& ctx,
                std::byte* scratch) const override {
    float* y = ctx.Resolve(s_.output);
    const float* r = s_.has_residual ? ctx.Resolve(s_.residual) : nullptr;
    const int64_t oc = s_.geo.oc;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t m0 = t / n_blocks_ * m_tile_;
      const int64_t block = t % n_blocks_;
      const int64_t rows = std::min(m_tile_, m_ - m0);
      // Column range of this tile: a column tile of the single GEMM, or whole GEMMs.
      int64_t gemm_begin = 0, gemm_end = 1, n_begin = 0, n_end = gemm_n_;
      if (num_gemms_ == 1) {
        n_begin = block * n_tile_;
        n_end = std::min(n_begin + n_tile_, gemm_n_);
      } else {
        gemm_begin = block * gemms_per_block_;
        gemm_end = std::min(gemm_begin + gemms_per_block_, num_gemms_);
      }
      if (s_.indirect) {
        const float** indirection = reinterpret_cast<const float**>(scratch);
        BuildIndirection(ctx, m0, rows, indirection);
        kernels::IgemmTileArgs args;
        args.m = rows;
        args.n_begin = n_begin;
        args.n_end = n_end;
        args.indirection = indirection;
        args.ks = s_.geo.kh * s_.geo.kw;
        args.kc = cg_;
        args.zero = zeros_.data();
        args.ldc = oc;
        args.ldr = oc;
        for (int64_t s = gemm_begin; s < gemm_end; ++s) {
          args.a_offset = s * cg_;
          args.c = y + m0 * oc + s * gemm_n_;
          args.residual = r != nullptr ? r + m0 * oc + s * gemm_n_ : nullptr;
          kernels::IgemmTile(*s_.config, s_.weights->gemms[s], epilogue_, args);
        }
      } else {
        Im2colContext im2col{&s_.geo, &ctx, &s_.input, m0, 0, cg_};
        GemmTileArgs args;
        args.m = rows;
        args.n_begin = n_begin;
        args.n_end = n_end;
        args.fetch = &Im2colFetch;
        args.fetch_ctx = &im2col;
        args.ldc = oc;
        args.ldr = oc;
        for (int64_t s = gemm_begin; s < gemm_end; ++s) {
          im2col.c0 = s * cg_;
          args.c = y + m0 * oc + s * gemm_n_;
          args.residual = r != nullptr ? r + m0 * oc + s * gemm_n_ : nullptr;
          kernels::GemmTile(*s_.config, s_.weights->gemms[s], epilogue_, args,
                            reinterpret_cast<float*>(scratch));
        }
      }
      if (post_ != nullptr) {
        const int64_t col_begin = gemm_begin * gemm_n_ + n_begin;
        const int64_t col_end = (gemm_end - 1) * gemm_n_ + n_end;
        for (int64_t i = 0; i < rows; ++i) {
          float* row = y + (m0 + i) * oc + col_begin;
          post_(row, row, col_end - col_begin);
        }
      }
    }
  }

 private:
  // Pointers to the input pixel (channel 0) under each tap of output pixels m0 .. m0 + rows − 1,
  // in the [row block][tap][mr] layout of IgemmTileArgs; zeros_ where the tap is in padding.
  void BuildIndirection(const RunContext& ctx, int64_t m0, int64_t rows,
                        const float** indirection) const {
    const ConvGeometry& g = s_.geo;
    const int64_t mr = s_.config->mr;
    const int64_t ks = g.kh * g.kw;
    const int64_t image_floats = g.h * g.w * g.c;
    int64_t b = m0 / (g.oh * g.ow);
    int64_t oy = m0 / g.ow % g.oh;
    int64_t ox = m0 % g.ow;
    const float* image = ctx.ResolveImage(s_.input, b, image_floats);
    for (int64_t i = 0; i < rows; ++i) {
      const float** row = indirection + ((i / mr) * ks) * mr + i % mr;
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.sh - g.pt + ky * g.dh;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.sw - g.pl + kx * g.dw;
          const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
          row[(ky * g.kw + kx) * mr] = inside ? image + (iy * g.w + ix) * g.c : zeros_.data();
        }
      }
      if (++ox == g.ow) {
        ox = 0;
        if (++oy == g.oh) {
          oy = 0;
          if (++b * g.oh * g.ow < m0 + rows) image = ctx.ResolveImage(s_.input, b, image_floats);
        }
      }
    }
  }

  Setup s_;
  std::vector<float> zeros_;  // cg_ zeros for padding taps of the indirect path
  int64_t m_ = 0;
  int64_t gpg_ = 1;        // groups per GEMM
  int64_t num_gemms_ = 1;  // groups / gpg_
  int64_t gemm_n_ = 0;     // output channels per GEMM
  int64_t cg_ = 0;         // input channels per GEMM (per patch tap)
  int64_t gemm_k_ = 0;     // kh·kw·cg_
  int64_t m_tile_ = 0, m_tiles_ = 0;
  int64_t n_tile_ = 0;           // one GEMM: its column tile
  int64_t gemms_per_block_ = 1;  // several GEMMs: GEMMs per column block
  int64_t n_blocks_ = 1;
  GemmEpilogue epilogue_{};
  kernels::ActivationFn post_ = nullptr;
  int64_t grain_ = 1;
};

// Packs OIHW conv weights as `groups / gpg` block-diagonal GEMMs of [gpg·cout_g][(ky, kx, ci)].
absl::StatusOr<std::shared_ptr<const GroupedPackedWeights>> GetConvWeights(
    const OpPlanInput& in, const GemmConfig& config, const ConvGeometry& g, int64_t groups,
    int64_t gpg, bool has_bias) {
  const Param& w = in.param(0);
  const float* bias = has_bias ? in.param(1).data.data() : nullptr;
  return in.weights->GetOrCreate<GroupedPackedWeights>(
      in.node_index, WeightTag(config, gpg),
      [&]() -> absl::StatusOr<std::shared_ptr<const GroupedPackedWeights>> {
        auto packed = std::make_shared<GroupedPackedWeights>();
        packed->groups_per_gemm = gpg;
        const int64_t cin_g = g.c / groups, cout_g = g.oc / groups;
        const int64_t n = gpg * cout_g, cg = gpg * cin_g, k = g.kh * g.kw * cg;
        std::vector<float> dense(static_cast<size_t>(n * k));
        for (int64_t s = 0; s < groups / gpg; ++s) {
          std::fill(dense.begin(), dense.end(), 0.f);
          for (int64_t o = 0; o < n; ++o) {
            const int64_t oc = s * n + o;
            const int64_t local_group = o / cout_g;
            for (int64_t ky = 0; ky < g.kh; ++ky) {
              for (int64_t kx = 0; kx < g.kw; ++kx) {
                for (int64_t ci = 0; ci < cin_g; ++ci) {
                  dense[o * k + (ky * g.kw + kx) * cg + local_group * cin_g + ci] =
                      w.data[((oc * cin_g + ci) * g.kh + ky) * g.kw + kx];
                }
              }
            }
          }
          packed->gemms.push_back(GemmPackedWeights::Pack(
              config, n, k, dense.data(), k, bias != nullptr ? bias + s * n : nullptr));
        }
        return std::shared_ptr<const GroupedPackedWeights>(std::move(packed));
      });
}

// Batches groups whose output width is under half a vector: as many as fill one vector.
int64_t GroupsPerGemm(const GemmConfig& config, int64_t groups, int64_t cout_g) {
  int64_t gpg = std::max<int64_t>(config.lanes / cout_g, 1);
  while (groups % gpg != 0) --gpg;
  return gpg;
}

absl::Status CheckConv(const OpPlanInput& in, const Conv2DAttrs& a) {
  if (absl::Status s = CheckCommon(in, a.fused_residual); !s.ok()) return s;
  if (a.fused_channel_norm) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: a fused channel norm needs a depthwise conv", in.node().name));
  }
  const Dims& id = in.input_dims[0];
  if (a.groups < 1 || id.c % a.groups != 0 || a.out_channels % a.groups != 0 ||
      in.output_dims.c != a.out_channels) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: groups %d must divide input channels %d and output channels %d "
                        "(output dims %s)",
                        in.node().name, a.groups, id.c, a.out_channels, in.output_dims.ToString()));
  }
  if (a.kernel_h < 1 || a.kernel_w < 1 || a.stride_h < 1 || a.stride_w < 1 || a.dilation_h < 1 ||
      a.dilation_w < 1 || a.pad_top < 0 || a.pad_left < 0 || a.pad_bottom < 0 || a.pad_right < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: bad kernel, stride, dilation or padding", in.node().name));
  }
  const int64_t oh =
      (id.h + a.pad_top + a.pad_bottom - int64_t{a.dilation_h} * (a.kernel_h - 1) - 1) /
          a.stride_h +
      1;
  const int64_t ow =
      (id.w + a.pad_left + a.pad_right - int64_t{a.dilation_w} * (a.kernel_w - 1) - 1) /
          a.stride_w +
      1;
  if (oh < 1 || ow < 1 || oh != in.output_dims.h || ow != in.output_dims.w) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: output dims %s do not match the conv of %s (%dx%d)", in.node().name,
                        in.output_dims.ToString(), id.ToString(), oh, ow));
  }
  const int64_t numel = a.out_channels * (id.c / a.groups) * a.kernel_h * a.kernel_w;
  if (absl::Status s = CheckParam(in, 0, numel, "weight"); !s.ok()) return s;
  if (in.node().params.size() > 1) {
    if (absl::Status s = CheckParam(in, 1, a.out_channels, "bias"); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

OpResult CreatePointwiseConvOp(const OpPlanInput& in) {
  const auto* attrs = std::get_if<Conv2DAttrs>(&in.node().attrs);
  if (attrs == nullptr) return absl::InvalidArgumentError("pointwise conv without Conv2D attrs");
  const Conv2DAttrs& a = *attrs;
  if (absl::Status s = CheckConv(in, a); !s.ok()) return s;
  if (a.kernel_h != 1 || a.kernel_w != 1 || a.stride_h != 1 || a.stride_w != 1 || a.groups != 1 ||
      a.pad_top != 0 || a.pad_left != 0 || a.pad_bottom != 0 || a.pad_right != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: not a 1x1 stride-1 unpadded ungrouped conv", in.node().name));
  }
  const Dims& id = in.input_dims[0];
  DenseGemmOp::Setup s;
  s.kind = "pointwise";
  s.config = &kernels::GetGemmConfig(in.isa);
  s.m = in.batch * id.h * id.w;
  s.n = a.out_channels;
  s.k = id.c;
  const bool has_bias = in.node().params.size() > 1;
  auto weights = GetDenseWeights(in, *s.config, s.n, s.k, has_bias);
  if (!weights.ok()) return weights.status();
  s.weights = *std::move(weights);
  s.epilogue = kernels::MakeGemmEpilogue(a.act, s.config->isa);
  s.input = in.inputs[0];
  s.output = in.output;
  s.has_residual = a.fused_residual;
  if (a.fused_residual) s.residual = in.inputs[1];
  s.num_threads = in.num_threads;
  return std::make_unique<DenseGemmOp>(std::move(s));
}

OpResult CreateGeneralConvOp(const OpPlanInput& in) {
  const auto* attrs = std::get_if<Conv2DAttrs>(&in.node().attrs);
  if (attrs == nullptr) return absl::InvalidArgumentError("conv without Conv2D attrs");
  const Conv2DAttrs& a = *attrs;
  if (absl::Status s = CheckConv(in, a); !s.ok()) return s;
  const Dims& id = in.input_dims[0];
  ConvGemmOp::Setup s;
  s.config = &kernels::GetGemmConfig(in.isa);
  ConvGeometry& g = s.geo;
  g.batch = in.batch;
  g.h = id.h;
  g.w = id.w;
  g.c = id.c;
  g.oh = in.output_dims.h;
  g.ow = in.output_dims.w;
  g.oc = a.out_channels;
  g.kh = a.kernel_h;
  g.kw = a.kernel_w;
  g.sh = a.stride_h;
  g.sw = a.stride_w;
  g.dh = a.dilation_h;
  g.dw = a.dilation_w;
  g.pt = a.pad_top;
  g.pl = a.pad_left;
  s.groups = a.groups;
  // The indirect GEMM reads patches in place (no im2col copies): faster for every multi-tap or
  // grouped conv measured. A dense 1×1 strided conv has one tap per pixel and rows of C floats
  // far apart (4 KiB for C = 512, stride 2, which alias in L1): copying rows wins there.
  s.indirect = a.groups > 1 || a.kernel_h * a.kernel_w > 1;
  const int64_t gpg = GroupsPerGemm(*s.config, a.groups, a.out_channels / a.groups);
  auto weights =
      GetConvWeights(in, *s.config, g, a.groups, gpg, /*has_bias=*/in.node().params.size() > 1);
  if (!weights.ok()) return weights.status();
  s.weights = *std::move(weights);
  s.act = a.act;
  s.input = in.inputs[0];
  s.output = in.output;
  s.has_residual = a.fused_residual;
  if (a.fused_residual) s.residual = in.inputs[1];
  s.num_threads = in.num_threads;
  return std::make_unique<ConvGemmOp>(std::move(s));
}

OpResult CreateLinearOp(const OpPlanInput& in) {
  const auto* attrs = std::get_if<LinearAttrs>(&in.node().attrs);
  if (attrs == nullptr) return absl::InvalidArgumentError("linear without Linear attrs");
  const LinearAttrs& a = *attrs;
  if (absl::Status s = CheckCommon(in, a.fused_residual); !s.ok()) return s;
  const Dims& id = in.input_dims[0];
  if (id.h != 1 || id.w != 1 || in.output_dims.h != 1 || in.output_dims.w != 1 ||
      in.output_dims.c != a.out_features || a.out_features < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: linear needs 1x1xK input and 1x1x%d output, got %s -> %s",
                        in.node().name, a.out_features, id.ToString(), in.output_dims.ToString()));
  }
  if (absl::Status s = CheckParam(in, 0, a.out_features * id.c, "weight"); !s.ok()) return s;
  const bool has_bias = in.node().params.size() > 1;
  if (has_bias) {
    if (absl::Status s = CheckParam(in, 1, a.out_features, "bias"); !s.ok()) return s;
  }
  DenseGemmOp::Setup s;
  s.kind = "linear";
  s.config = &kernels::GetGemmConfig(in.isa);
  s.m = in.batch;
  s.n = a.out_features;
  s.k = id.c;
  auto weights = GetDenseWeights(in, *s.config, s.n, s.k, has_bias);
  if (!weights.ok()) return weights.status();
  s.weights = *std::move(weights);
  s.epilogue = kernels::MakeGemmEpilogue(a.act, s.config->isa);
  s.input = in.inputs[0];
  s.output = in.output;
  s.has_residual = a.fused_residual;
  if (a.fused_residual) s.residual = in.inputs[1];
  s.num_threads = in.num_threads;
  return std::make_unique<DenseGemmOp>(std::move(s));
}

}  // namespace visionserve::engine
