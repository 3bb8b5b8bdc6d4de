#include "engine/kernels/gemm.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

namespace visionserve::engine::kernels {
namespace {

// Portable kernels: f32_gemm_<m>x8__scalar and f32_igemm_<m>x8__scalar, m = 1..6. Plain C++ on
// generic 4-float vectors; on baseline x86-64 that is SSE2 with 12 accumulators, 2 vectors of B
// and 1 broadcast in the 16 xmm registers.
constexpr int kPortableMr = 6;
constexpr int kPortableNr = 8;
constexpr int kPortableLanes = 4;
constexpr int kPortableKc = 256;

// Generic 4-float vectors (GCC/Clang vector extensions): SSE2 on baseline x86-64, NEON on Arm,
// scalar code elsewhere. Auto-vectorisation of the plain loops proved unreliable (GCC vectorises
// the K loop as a strided reduction), so the kernel spells out its vectors.
typedef float V4 __attribute__((vector_size(16)));

V4 LoadV4(const float* p) {
  V4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// MR rows × NV vectors of C; see the AVX-512 kernel for the direct/indirect A contract.
template <int MR, int NV, bool kIndirect>
inline void PortableKernel(int64_t ks, int64_t kc, int64_t nc, const float* a, int64_t a_stride,
                           const float* const* a_ptrs, int64_t a_offset, const float* zero,
                           const float* w, float* c, int64_t c_stride, const GemmUkernelParams& p) {
  constexpr int kCols = NV * kPortableLanes;
  const int64_t cols = std::min<int64_t>(nc, kCols);
  V4 acc[MR][NV];
  alignas(16) float row[kCols] = {};
  for (int i = 0; i < MR; ++i) {
    if (p.flags & kGemmAccumulate) {
      for (int64_t j = 0; j < cols; ++j) row[j] = c[i * c_stride + j];
    } else {
      for (int j = 0; j < kCols; ++j) row[j] = p.bias != nullptr ? p.bias[j] : 0.f;
    }
    for (int v = 0; v < NV; ++v) acc[i][v] = LoadV4(row + v * kPortableLanes);
  }
  const float* ar[MR];
  for (int64_t t = 0; t < ks; ++t) {
    for (int i = 0; i < MR; ++i) {
      if constexpr (kIndirect) {
        const float* q = a_ptrs[t * kPortableMr + i];
        ar[i] = q != zero ? q + a_offset : zero;
      } else {
        ar[i] = a + i * a_stride;
      }
    }
    for (int64_t k = 0; k < kc; ++k) {
      V4 b[NV];
      for (int v = 0; v < NV; ++v) b[v] = LoadV4(w + v * kPortableLanes);
      w += kPortableNr;
      for (int i = 0; i < MR; ++i) {
        const float av = ar[i][k];
        for (int v = 0; v < NV; ++v) acc[i][v] += av * b[v];
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) std::memcpy(row + v * kPortableLanes, &acc[i][v], sizeof(V4));
    for (int64_t j = 0; j < cols; ++j) {
      float s = row[j];
      if (p.flags & kGemmFinal) {
        if (p.residual != nullptr) s += p.residual[i * p.residual_stride + j];
        // Comparisons are false for NaN, so NaNs pass through the clamp.
        s = s < p.min ? p.min : s;
        s = s > p.max ? p.max : s;
      }
      c[i * c_stride + j] = s;
    }
  }
}

template <int MR, int NV>
void PortableUkernel(int64_t kc, int64_t nc, const float* a, int64_t a_stride, const float* w,
                     float* c, int64_t c_stride, const GemmUkernelParams& p) {
  PortableKernel<MR, NV, false>(1, kc, nc, a, a_stride, nullptr, 0, nullptr, w, c, c_stride, p);
}

template <int MR, int NV>
void PortableIgemmUkernel(int64_t ks, int64_t kc, int64_t nc, const float* const* a_ptrs,
                          int64_t a_offset, const float* zero, const float* w, float* c,
                          int64_t c_stride, const GemmUkernelParams& p) {
  PortableKernel<MR, NV, true>(ks, kc, nc, nullptr, 0, a_ptrs, a_offset, zero, w, c, c_stride, p);
}

template <int NV, int... M>
void FillPortableRow(GemmConfig* config, std::integer_sequence<int, M...>) {
  ((config->ukernel[NV - 1][M] = &PortableUkernel<M + 1, NV>), ...);
  ((config->igemm[NV - 1][M] = &PortableIgemmUkernel<M + 1, NV>), ...);
}

GemmConfig MakePortableConfig() {
  GemmConfig config;
  config.isa = Isa::kPortable;
  config.name = "f32_gemm_6x8__scalar";
  config.igemm_name = "f32_igemm_6x8__scalar";
  config.mr = kPortableMr;
  config.nr = kPortableNr;
  config.lanes = kPortableLanes;
  config.kc = kPortableKc;
  FillPortableRow<1>(&config, std::make_integer_sequence<int, kPortableMr>());
  FillPortableRow<2>(&config, std::make_integer_sequence<int, kPortableMr>());
  return config;
}

GemmConfig MakeConfig(void (*fill)(GemmConfig*)) {
  GemmConfig config;
  fill(&config);
  return config;
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }

// Bytes of a 2 MiB L2 for the tile's B block (one K block of its columns), A block and C tile.
// 512 KiB B blocks measured ~3% faster than 1 MiB on 1024³ and ConvNeXt's 768↔3072 linears.
constexpr int64_t kBBlockBytes = 512 << 10;
constexpr int64_t kABlockBytes = 256 << 10;
constexpr int64_t kCTileBytes = 512 << 10;

// Column panels a tile needs before GemmTile packs A (when the config can). Packing a K block
// (mostly fetching A from memory) costs about as much as the packed kernel saves on 8-10 panels:
// on 3136×N×K, packing lost 12% at 2 panels and 7% at 3, broke even at 12, and won 2-3% at 11
// panels of 1024³ (AVX-512, one thread).
constexpr int64_t kMinPanelsToPackA = 8;

// The epilogue's activation over columns [n_begin, n_end) of `rows` rows of C.
void PostRows(const GemmEpilogue& epilogue, int64_t rows, float* c_rows, int64_t ldc,
              int64_t n_begin, int64_t n_end) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = c_rows + i * ldc + n_begin;
    epilogue.post(row, row, n_end - n_begin);
  }
}

}  // namespace

const GemmConfig& GetGemmConfig(Isa isa) {
  // Each set is built on first use only: the fill functions are compiled with their ISA's
  // flags and must not run on a CPU without it.
  switch (std::min(isa, DetectIsa())) {
    case Isa::kAvx512: {
      static const GemmConfig config = MakeConfig(&internal::FillGemmConfigAvx512);
      return config;
    }
    case Isa::kAvx2: {
      static const GemmConfig config = MakeConfig(&internal::FillGemmConfigAvx2);
      return config;
    }
    case Isa::kPortable:
      break;
  }
  static const GemmConfig config = MakePortableConfig();
  return config;
}

GemmPackedWeights GemmPackedWeights::Pack(const GemmConfig& config, int64_t n, int64_t k,
                                          const float* w, int64_t w_stride, const float* bias) {
  GemmPackedWeights packed;
  packed.n_ = n;
  packed.k_ = k;
  packed.nr_ = config.nr;
  const int64_t nr = config.nr;
  const int64_t panels = packed.num_panels();
  const size_t count = static_cast<size_t>(std::max<int64_t>(panels * k * nr, 1));
  packed.data_ = MakeAligned<float>(count);
  std::memset(packed.data_.get(), 0, count * sizeof(float));
  for (int64_t col = 0; col < n; ++col) {
    float* dst = packed.data_.get() + (col / nr) * k * nr + col % nr;
    const float* src = w + col * w_stride;
    for (int64_t kk = 0; kk < k; ++kk) dst[kk * nr] = src[kk];
  }
  if (bias != nullptr) {
    const size_t bias_count = static_cast<size_t>(std::max<int64_t>(panels * nr, 1));
    packed.bias_ = MakeAligned<float>(bias_count);
    std::memset(packed.bias_.get(), 0, bias_count * sizeof(float));
    std::memcpy(packed.bias_.get(), bias, static_cast<size_t>(n) * sizeof(float));
  }
  return packed;
}

size_t GemmPackedWeights::bytes() const {
  const int64_t panels = num_panels();
  return static_cast<size_t>(panels * k_ * nr_ + (bias_ ? panels * nr_ : 0)) * sizeof(float);
}

GemmEpilogue MakeGemmEpilogue(Activation act, Isa isa) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  switch (act) {
    case Activation::kNone:
      return {-kInf, kInf, nullptr};
    case Activation::kReLU:
      return {0.f, kInf, nullptr};
    case Activation::kReLU6:
      return {0.f, 6.f, nullptr};
    default:
      return {-kInf, kInf, GetActivationKernel(act, isa)};
  }
}

int64_t GemmKBlock(const GemmConfig& config, int64_t k) {
  if (k <= config.kc) return std::max<int64_t>(k, 1);
  const int64_t blocks = CeilDiv(k, config.kc);
  return RoundUp(CeilDiv(k, blocks), 8);
}

int64_t GemmBBlockPanels(const GemmConfig& config, int64_t kc) {
  return std::max<int64_t>(kBBlockBytes / (std::max<int64_t>(kc, 1) * config.nr * 4), 1);
}

int64_t GemmABufferStride(int64_t kc) {
  // An odd number of cache lines per row keeps up to 64 consecutive rows in distinct L1 sets.
  int64_t lines = CeilDiv(kc, 16);
  if (lines % 2 == 0) ++lines;
  return lines * 16;
}

size_t GemmTileScratchFloats(const GemmConfig& config, int64_t m_tile, int64_t k) {
  const int64_t kc = GemmKBlock(config, k);
  const int64_t packed = config.packs_a() ? RoundUp(m_tile, config.mr) * kc : 0;
  return static_cast<size_t>(m_tile * GemmABufferStride(kc) + packed);
}

void GemmTile(const GemmConfig& config, const GemmPackedWeights& weights,
              const GemmEpilogue& epilogue, const GemmTileArgs& args, float* scratch) {
  const int64_t k_total = weights.k();
  const int64_t nr = config.nr;
  const int64_t mr = config.mr;
  const int64_t kc_max = GemmKBlock(config, k_total);
  const int64_t buf_stride = GemmABufferStride(kc_max);
  const int64_t p_begin = args.n_begin / nr;
  const int64_t p_end = CeilDiv(args.n_end, nr);
  const float* bias = weights.bias();

  GemmUkernelParams params;
  params.min = epilogue.min;
  params.max = epilogue.max;
  params.residual_stride = args.ldr;

  const bool pack = scratch != nullptr && config.packs_a() && p_end - p_begin >= kMinPanelsToPackA;
  float* packed_a = pack ? scratch + args.m * buf_stride : nullptr;
  // A tile wider than one B block walks its columns in B blocks that stay in L2 while every row
  // uses them; A is fetched (and packed) once per K block for all of them.
  const int64_t sub_blocks = CeilDiv(p_end - p_begin, GemmBBlockPanels(config, kc_max));
  const int64_t sub_panels = CeilDiv(p_end - p_begin, std::max<int64_t>(sub_blocks, 1));

  for (int64_t k0 = 0; k0 < k_total; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, k_total - k0);
    const bool last = k0 + kc == k_total;
    GemmABlock a;
    if (args.fetch != nullptr) {
      a = args.fetch(args.fetch_ctx, args.m, k0, kc, scratch, buf_stride);
    } else if (args.copy_a && !pack) {
      for (int64_t i = 0; i < args.m; ++i) {
        std::memcpy(scratch + i * buf_stride, args.a + i * args.lda + k0,
                    static_cast<size_t>(kc) * sizeof(float));
      }
      a = {scratch, buf_stride};
    } else {
      a = {args.a + k0, args.lda};
    }
    params.flags = (k0 > 0 ? kGemmAccumulate : 0u) | (last ? kGemmFinal : 0u);
    if (pack) config.pack_a(args.m, kc, a.data, a.stride, packed_a);

    for (int64_t sb = p_begin; sb < p_end; sb += sub_panels) {
      const int64_t sb_end = std::min(p_end, sb + sub_panels);
      // The activation runs on each row block after the tile's last columns, while in L1.
      const bool post_rows = last && epilogue.post != nullptr && sb_end == p_end;
      for (int64_t m0 = 0; m0 < args.m; m0 += mr) {
        const int64_t rows = std::min(mr, args.m - m0);
        const float* a_rows = a.data + m0 * a.stride;
        const float* a_panel = pack ? packed_a + m0 * kc : nullptr;
        float* c_rows = args.c + m0 * args.ldc;
        for (int64_t p = sb; p < sb_end; ++p) {
          const int64_t col0 = p * nr;
          const int64_t cols = std::min(nr, args.n_end - col0);
          params.bias = bias != nullptr ? bias + col0 : nullptr;
          params.residual =
              args.residual != nullptr && last ? args.residual + m0 * args.ldr + col0 : nullptr;
          const float* w = weights.panel(p) + k0 * nr;
          if (pack) {
            config.GetPacked(rows, cols)(kc, cols, a_panel, w, c_rows + col0, args.ldc, params);
          } else {
            config.Get(rows, cols)(kc, cols, a_rows, a.stride, w, c_rows + col0, args.ldc, params);
          }
        }
        if (post_rows) PostRows(epilogue, rows, c_rows, args.ldc, args.n_begin, args.n_end);
      }
    }
  }
}

int64_t IgemmTapsPerBlock(const GemmConfig& config, int64_t kc) {
  return std::max<int64_t>(config.kc / std::max<int64_t>(kc, 1), 1);
}

void IgemmTile(const GemmConfig& config, const GemmPackedWeights& weights,
               const GemmEpilogue& epilogue, const IgemmTileArgs& args) {
  const int64_t nr = config.nr;
  const int64_t mr = config.mr;
  const int64_t taps_per_block = IgemmTapsPerBlock(config, args.kc);
  const int64_t p_begin = args.n_begin / nr;
  const int64_t p_end = CeilDiv(args.n_end, nr);
  const float* bias = weights.bias();

  GemmUkernelParams params;
  params.min = epilogue.min;
  params.max = epilogue.max;
  params.residual_stride = args.ldr;

  for (int64_t t0 = 0; t0 < args.ks; t0 += taps_per_block) {
    const int64_t taps = std::min(taps_per_block, args.ks - t0);
    const bool last = t0 + taps == args.ks;
    params.flags = (t0 > 0 ? kGemmAccumulate : 0u) | (last ? kGemmFinal : 0u);
    for (int64_t m0 = 0; m0 < args.m; m0 += mr) {
      const int64_t rows = std::min(mr, args.m - m0);
      const float* const* ptrs = args.indirection + ((m0 / mr) * args.ks + t0) * mr;
      float* c_rows = args.c + m0 * args.ldc;
      for (int64_t p = p_begin; p < p_end; ++p) {
        const int64_t col0 = p * nr;
        const int64_t cols = std::min(nr, args.n_end - col0);
        params.bias = bias != nullptr ? bias + col0 : nullptr;
        params.residual =
            args.residual != nullptr && last ? args.residual + m0 * args.ldr + col0 : nullptr;
        config.GetIgemm(rows, cols)(taps, args.kc, cols, ptrs, args.a_offset, args.zero,
                                    weights.panel(p) + t0 * args.kc * nr, c_rows + col0, args.ldc,
                                    params);
      }
      if (last && epilogue.post != nullptr) {
        PostRows(epilogue, rows, c_rows, args.ldc, args.n_begin, args.n_end);
      }
    }
  }
}

GemmTiling PlanGemmTiling(const GemmConfig& config, int64_t m, int64_t n, int64_t k,
                          int num_threads, GemmTileWidth width) {
  const int64_t mr = config.mr;
  const int64_t nr = config.nr;
  const int64_t kc = GemmKBlock(config, k);
  const int64_t panels = std::max<int64_t>(CeilDiv(n, nr), 1);
  m = std::max<int64_t>(m, 1);

  // N: one K block of the tile's B columns stays in L2 while every row of the tile uses it.
  // Wide tiles span all columns and GemmTile walks them in such blocks.
  const int64_t max_panels = GemmBBlockPanels(config, kc);
  int64_t n_tiles = CeilDiv(panels, max_panels);
  int64_t n_panels_per_tile = CeilDiv(panels, n_tiles);
  // M: the tile's A block and C tile stay in L2 beside it.
  int64_t m_tile = std::min(kABlockBytes / (kc * 4), kCTileBytes / (n_panels_per_tile * nr * 4));
  m_tile = std::max(m_tile / mr, int64_t{1}) * mr;

  // Enough tiles for every worker, preferring to cut M (B blocks are shared, A rows are not).
  const int64_t want = num_threads > 1 ? 4 * int64_t{num_threads} : 1;
  while (CeilDiv(m, m_tile) * n_tiles < want && m_tile > 2 * mr) {
    m_tile = std::max(RoundUp(m_tile / 2, mr), 2 * mr);
  }
  while (CeilDiv(m, m_tile) * n_tiles < want && n_panels_per_tile > 1) {
    --n_panels_per_tile;
    n_tiles = CeilDiv(panels, n_panels_per_tile);
  }
  while (CeilDiv(m, m_tile) * n_tiles < want && m_tile > mr) m_tile -= mr;

  // Balance: equal tiles rather than a full run and a small remainder.
  GemmTiling t;
  t.m_tiles = CeilDiv(m, m_tile);
  t.m_tile = std::min(RoundUp(CeilDiv(m, t.m_tiles), mr), m);
  t.m_tiles = CeilDiv(m, t.m_tile);
  t.n_tile = std::min(n_panels_per_tile * nr, std::max<int64_t>(n, 1));
  t.n_tiles = CeilDiv(std::max<int64_t>(n, 1), t.n_tile);
  // Share of the workers' time spent on tiles when `tiles` equal tiles are dealt out in rounds.
  const auto balance = [threads = std::max<int64_t>(num_threads, 1)](int64_t tiles) {
    return static_cast<double>(tiles) / static_cast<double>(threads * CeilDiv(tiles, threads));
  };
  if (width == GemmTileWidth::kAllColumns && t.n_tiles > 1 && t.m_tiles >= want &&
      balance(t.m_tiles) >= balance(t.m_tiles * t.n_tiles)) {
    // The row blocks alone give every worker enough tiles, as evenly: each spans all columns,
    // with the same rows per B block, and fetches (packs) its A once per K block instead of
    // once per column tile.
    t.n_tile = std::max<int64_t>(n, 1);
    t.n_tiles = 1;
  }
  return t;
}

void GemmRef(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* w,
             int64_t w_stride, const float* bias, const float* residual, int64_t ldr,
             Activation act, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t kk = 0; kk < k; ++kk) {
        s += static_cast<double>(a[i * lda + kk]) * static_cast<double>(w[j * w_stride + kk]);
      }
      if (bias != nullptr) s += bias[j];
      if (residual != nullptr) s += residual[i * ldr + j];
      row[j] = static_cast<float>(s);
    }
    ActivationRef(act, row, row, n);
  }
}

}  // namespace visionserve::engine::kernels
