#pragma once

// Single-precision GEMM: C[M×N] = epilogue(A[M×K] · B[K×N]) for the engine's convolutions and
// linears (NHWC activations are A, weights are B).
//
// Three levels, as in XNNPACK:
//  * Microkernels f32_gemm_<mr>x<nr>__<isa> (gemm.cc, gemm_avx2.cc, gemm_avx512.cc): one block
//    of at most mr rows × nr columns of C over one range of K. A rows are strided (not packed),
//    B is one packed panel. They take pointers, strides and params only. A kernel set may add a
//    packed-A form (f32_gemm_<mr>x<nr>__<isa>_packa) reading A from an mr-interleaved micro-panel,
//    and the function that packs it.
//  * GemmTile: the driver that computes one rectangular tile of C over all of K, in K blocks
//    sized for the caches, applying the epilogue after the last block. With scratch and enough
//    column panels to amortise it, it packs each K block of A once and runs the packed form.
//  * PlanGemmTiling: splits C into tiles (the parallel unit of an op) for a thread count.
//
// The kernel set is chosen once, from an Isa, through GetGemmConfig(); the hot path only calls
// function pointers. Weights are packed once into the microkernel's panel layout
// (GemmPackedWeights) and shared by every plan.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/activation.h"
#include "engine/cpu_features.h"
#include "engine/kernels/activation_kernels.h"
#include "engine/tensor.h"

namespace visionserve::engine::kernels {

// Largest mr and number of vectors per row (nr / vector lanes) of any microkernel.
inline constexpr int kGemmMaxMr = 16;
inline constexpr int kGemmMaxNv = 4;

// GemmUkernelParams::flags.
inline constexpr uint32_t kGemmAccumulate = 1;  // C already holds partial sums: add to them
inline constexpr uint32_t kGemmFinal = 2;       // last K block: add residual, then clamp

struct GemmUkernelParams {
  // nr values for this panel's columns (readable in full even past N), or nullptr. Used to
  // initialise the sums when kGemmAccumulate is not set.
  const float* bias = nullptr;
  // Residual rows (read for columns < nc only), or nullptr. Used with kGemmFinal.
  const float* residual = nullptr;
  int64_t residual_stride = 0;  // floats
  // Clamp applied with kGemmFinal (−inf/+inf for none; NaNs propagate).
  float min = 0.f;
  float max = 0.f;
  uint32_t flags = 0;
};

// A microkernel computing, for i < its row count (a compile-time constant ≤ mr) and j < nc ≤ nr:
//   s = (flags & kGemmAccumulate) ? c[i·c_stride + j] : (bias ? bias[j] : 0)
//   s += Σ_{k<kc} a[i·a_stride + k] · w[k·nr + j]
//   if (flags & kGemmFinal) s = clamp(s + (residual ? residual[i·residual_stride + j] : 0))
//   c[i·c_stride + j] = s
// `w` is the packed panel at the block's first k (rows of nr floats, zero past N). Strides are
// in floats. Only columns j < nc of C and of the residual are read or written.
using GemmUkernelFn = void (*)(int64_t kc, int64_t nc, const float* a, int64_t a_stride,
                               const float* w, float* c, int64_t c_stride,
                               const GemmUkernelParams& params);

// The indirect-GEMM form of a microkernel (convolution without im2col, as XNNPACK's igemm):
// K is ks taps × kc channels, w holds the packed rows in that order (k = t·kc + ci), and row i of
// tap t is a_ptrs[t·mr + i] + a_offset, where mr is the config's full row count — except that a
// pointer equal to `zero` (kc zeros, for padding) is used as is.
using IgemmUkernelFn = void (*)(int64_t ks, int64_t kc, int64_t nc, const float* const* a_ptrs,
                                int64_t a_offset, const float* zero, const float* w, float* c,
                                int64_t c_stride, const GemmUkernelParams& params);

// The packed-A form of a microkernel: `a` is one micro-panel from GemmPackAFn, kc steps of mr
// floats (mr the config's full row count), row i of step k at a[k·mr + i]. Otherwise as
// GemmUkernelFn.
using GemmPackedUkernelFn = void (*)(int64_t kc, int64_t nc, const float* a, const float* w,
                                     float* c, int64_t c_stride, const GemmUkernelParams& params);

// Packs rows [0, m) × columns [0, kc) of a strided A (row i, column k at a[i·a_stride + k]) into
// ceil(m / mr) micro-panels of mr·kc floats each: panel b holds rows b·mr + i, row i of step k at
// packed[b·mr·kc + k·mr + i]. Entries of rows past m are unspecified; `packed` is 64-byte aligned.
using GemmPackAFn = void (*)(int64_t m, int64_t kc, const float* a, int64_t a_stride,
                             float* packed);

// One ISA's GEMM kernel set, chosen at plan time.
struct GemmConfig {
  Isa isa = Isa::kPortable;
  std::string_view name;        // the full-size kernel, e.g. "f32_gemm_14x32__avx512"
  std::string_view igemm_name;  // its indirect form, e.g. "f32_igemm_14x32__avx512"
  int mr = 0;                   // rows of the full-size kernel
  int nr = 0;                   // columns of a packed panel
  int lanes = 0;                // floats per vector; nr is a multiple
  int kc = 0;                   // default K block
  // ukernel[v - 1][m - 1] computes m ≤ mr rows × v·lanes columns (v ≤ nr / lanes); every entry
  // up to mr and nr / lanes is set.
  GemmUkernelFn ukernel[kGemmMaxNv][kGemmMaxMr] = {};
  IgemmUkernelFn igemm[kGemmMaxNv][kGemmMaxMr] = {};  // same shapes, indirect A
  // Optional packed-A forms (same shapes) and their packing function: all set or all null.
  GemmPackedUkernelFn packed_ukernel[kGemmMaxNv][kGemmMaxMr] = {};
  GemmPackAFn pack_a = nullptr;

  // The kernel for a block of `rows` ≤ mr rows and `cols` ≤ nr valid columns.
  GemmUkernelFn Get(int64_t rows, int64_t cols) const {
    return ukernel[(cols + lanes - 1) / lanes - 1][rows - 1];
  }
  IgemmUkernelFn GetIgemm(int64_t rows, int64_t cols) const {
    return igemm[(cols + lanes - 1) / lanes - 1][rows - 1];
  }
  GemmPackedUkernelFn GetPacked(int64_t rows, int64_t cols) const {
    return packed_ukernel[(cols + lanes - 1) / lanes - 1][rows - 1];
  }
  bool packs_a() const { return pack_a != nullptr; }
};

// The kernel set for `isa`, or for the best ISA this CPU has when it lacks `isa` (so the
// returned config's isa may be lower than asked). Thread-safe; the reference lives forever.
const GemmConfig& GetGemmConfig(Isa isa);

// B packed for one GemmConfig: panel p holds columns [p·nr, p·nr + nr) as K rows of nr floats,
// zero-filled past N; panels are contiguous. Bias (optional) is zero-padded to a multiple of nr.
// Immutable after packing; 64-byte aligned.
class GemmPackedWeights {
 public:
  GemmPackedWeights() = default;

  // Packs out-major weights w[n·w_stride + k] for n < N, k < K (torch Linear [out, in], or a
  // conv's [O][(ky, kx, ci)]), plus an optional bias[N] (nullptr for none).
  static GemmPackedWeights Pack(const GemmConfig& config, int64_t n, int64_t k, const float* w,
                                int64_t w_stride, const float* bias);

  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int nr() const { return nr_; }
  int64_t num_panels() const { return (n_ + nr_ - 1) / nr_; }
  const float* panel(int64_t p) const { return data_.get() + p * k_ * nr_; }
  const float* bias() const { return bias_.get(); }  // nullptr when packed without bias
  size_t bytes() const;

 private:
  int64_t n_ = 0;
  int64_t k_ = 0;
  int nr_ = 0;
  AlignedPtr<float> data_;
  AlignedPtr<float> bias_;
};

// The epilogue after bias and residual: a clamp done in registers (ReLU, ReLU6, none), or an
// activation kernel run over each finished row segment while it is in L1.
struct GemmEpilogue {
  float min;
  float max;
  ActivationFn post = nullptr;  // nullptr when the clamp is the whole activation
};
GemmEpilogue MakeGemmEpilogue(Activation act, Isa isa);

// A block of A the driver can read: row i, column k at data[i·stride + k].
struct GemmABlock {
  const float* data;
  int64_t stride;
};

// Produces rows [0, m) × columns [k0, k0 + kc) of a tile's A. `buf` has room for m rows of
// `buf_stride` ≥ kc floats; the function may fill it and return it, or return other memory.
using GemmAFetchFn = GemmABlock (*)(const void* ctx, int64_t m, int64_t k0, int64_t kc, float* buf,
                                    int64_t buf_stride);

// One tile of C: rows [0, m) (pointers already offset to the tile's first row) and columns
// [n_begin, n_end) of the packed weights.
struct GemmTileArgs {
  int64_t m = 0;
  int64_t n_begin = 0;  // a multiple of nr
  int64_t n_end = 0;
  // A as a strided matrix (row i, column k at a[i·lda + k]) when fetch is nullptr; with
  // copy_a it is copied per K block into scratch with a cache-friendly stride first.
  const float* a = nullptr;
  int64_t lda = 0;
  bool copy_a = false;
  // Otherwise A comes from fetch(fetch_ctx, ...) one K block at a time (e.g. im2col).
  GemmAFetchFn fetch = nullptr;
  const void* fetch_ctx = nullptr;
  float* c = nullptr;
  int64_t ldc = 0;
  const float* residual = nullptr;  // optional, same rows/columns as C
  int64_t ldr = 0;
};

// The K block GemmTile uses for a K of `k`: at most config.kc, balanced across blocks.
int64_t GemmKBlock(const GemmConfig& config, int64_t k);

// Floats of scratch GemmTile needs for tiles of up to `m_tile` rows over K = `k`: room for a
// copied or fetched A block and, when the config packs A, for its micro-panels.
size_t GemmTileScratchFloats(const GemmConfig& config, int64_t m_tile, int64_t k);
// Row stride of the A buffer GemmTile passes to fetch for K blocks of `kc`.
int64_t GemmABufferStride(int64_t kc);

// C tile = epilogue(A · B): bias (from `weights`), residual, clamp, post activation. `scratch`
// holds GemmTileScratchFloats(config, args.m, weights.k()) floats (64-byte aligned), or may be
// nullptr when A is a strided matrix without copy_a (A is then never packed). Single-threaded,
// allocates nothing.
void GemmTile(const GemmConfig& config, const GemmPackedWeights& weights,
              const GemmEpilogue& epilogue, const GemmTileArgs& args, float* scratch);

// One tile of an indirect GEMM (a convolution over an indirection buffer instead of im2col).
struct IgemmTileArgs {
  int64_t m = 0;
  int64_t n_begin = 0;  // a multiple of nr
  int64_t n_end = 0;
  // Row pointers: for row block b (rows b·mr ... b·mr + mr − 1) and tap t, the mr pointers at
  // indirection[(b·ks + t)·mr]. Pointers of rows past m are never read.
  const float* const* indirection = nullptr;
  int64_t ks = 1;               // taps
  int64_t kc = 0;               // channels per tap; weights.k() == ks·kc
  int64_t a_offset = 0;         // added to every pointer but `zero`
  const float* zero = nullptr;  // at least kc zeros
  float* c = nullptr;
  int64_t ldc = 0;
  const float* residual = nullptr;
  int64_t ldr = 0;
};

// Taps per K block of an indirect GEMM with `kc` channels per tap (whole taps, at least one).
int64_t IgemmTapsPerBlock(const GemmConfig& config, int64_t kc);

// C tile = epilogue(A · B) with A read through the indirection buffer. Allocates nothing.
void IgemmTile(const GemmConfig& config, const GemmPackedWeights& weights,
               const GemmEpilogue& epilogue, const IgemmTileArgs& args);

// How an M×N product is cut into tiles: tile t covers rows [mi·m_tile, ...) and columns
// [ni·n_tile, ...) with mi = t / n_tiles, ni = t % n_tiles.
struct GemmTiling {
  int64_t m_tile = 0;  // a multiple of mr unless it covers all of M
  int64_t n_tile = 0;  // a multiple of nr unless it covers all of N
  int64_t m_tiles = 0;
  int64_t n_tiles = 0;
  int64_t tiles() const { return m_tiles * n_tiles; }
};

// Column panels in one B block: kc rows of them fill the share of L2 a tile's B block gets.
int64_t GemmBBlockPanels(const GemmConfig& config, int64_t kc);

// Tiles big enough to amortise packing and kernel calls, small enough for the caches, and
// enough of them (about 4 per thread when the product allows) for `num_threads` workers.
// kBBlock: a tile is at most one B block wide (one K block of its columns fits L2 beside A),
// for ops whose driver walks a tile's columns once per row block (IgemmTile, grouped convs).
// kAllColumns: the same row blocks, but when they alone give every thread enough tiles, each
// tile spans all of N; GemmTile then walks its columns B block by B block and fetches (packs)
// A once per K block for all of them.
enum class GemmTileWidth { kBBlock, kAllColumns };

GemmTiling PlanGemmTiling(const GemmConfig& config, int64_t m, int64_t n, int64_t k,
                          int num_threads, GemmTileWidth width = GemmTileWidth::kBBlock);

// Plain reference with the same semantics, in double accumulation: for i < m, j < n,
//   c[i·ldc + j] = act(Σ_k a[i·lda + k] · w[j·w_stride + k] + bias[j] + residual[i·ldr + j])
// with bias and residual optional (nullptr) and act from ActivationRef.
void GemmRef(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* w,
             int64_t w_stride, const float* bias, const float* residual, int64_t ldr,
             Activation act, float* c, int64_t ldc);

namespace internal {
// Per-ISA kernel sets, defined in gemm_avx2.cc / gemm_avx512.cc (compiled with ISA flags).
void FillGemmConfigAvx2(GemmConfig* config);
void FillGemmConfigAvx512(GemmConfig* config);
}  // namespace internal

}  // namespace visionserve::engine::kernels
