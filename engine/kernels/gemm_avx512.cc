// AVX-512 GEMM microkernels: f32_gemm_<m>x32__avx512, f32_igemm_<m>x32__avx512 and
// f32_gemm_<m>x32__avx512_packa for m = 1..14, and the A packing for the last.
//
// 14 rows × 2 zmm of C stay in 28 accumulators; per k, two packed B vectors are loaded and each
// A value is broadcast once for two FMAs. Column tails use masked loads and stores. The packed-A
// form reads all 14 rows through one pointer (the strided form needs 14 row pointers, more than
// the free GPRs, and reloads some from the stack every k). This file
// is compiled with AVX-512 flags: it must not instantiate inline functions or templates from
// shared headers (the linker could pick the AVX-512 copy for baseline code), so it uses only
// intrinsics and its own internal-linkage code.

#include <immintrin.h>

#include <cstdint>
#include <utility>

#include "engine/kernels/gemm.h"

namespace visionserve::engine::kernels {
namespace {

constexpr int kMr = 14;
constexpr int kNr = 32;
constexpr int kLanes = 16;
constexpr int kKc = 384;
constexpr int kPrefetchFloats = 16 * kNr;

__mmask16 TailMask(int64_t valid) {
  if (valid >= kLanes) return 0xFFFF;
  if (valid <= 0) return 0;
  return static_cast<__mmask16>((1u << valid) - 1);
}

enum class ASource { kStrided, kIndirect, kPacked };

// One K step: acc[i][j] += a(i) · w[j·16 ...], with w the panel row of this step.
template <int MR, int NV, typename LoadA>
__attribute__((always_inline)) inline void Step(__m512 (&acc)[MR][NV], const float* w,
                                                LoadA load_a) {
  __m512 b[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    // B streams from L2; prefetching it 16 K steps ahead measured 3-6% faster on the large
    // ConvNeXt linears (reading past the panel's end is harmless: the next panel follows).
    _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetchFloats + j * kLanes), _MM_HINT_T0);
    b[j] = _mm512_load_ps(w + j * kLanes);
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    const __m512 av = _mm512_set1_ps(load_a(i));
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, b[j], acc[i][j]);
  }
}

// MR rows × NV vectors of C; the packed panel is kNr floats wide. Strided: row i of A at
// a + i·a_stride. Indirect: ks taps of kc channels, row i of tap t at a_ptrs[t·kMr + i]
// (+ a_offset unless it is `zero`). Packed: a micro-panel, row i of step k at a[k·kMr + i].
template <int MR, int NV, ASource kA>
__attribute__((always_inline)) inline void Kernel(int64_t ks, int64_t kc, int64_t nc,
                                                  const float* a, int64_t a_stride,
                                                  const float* const* a_ptrs, int64_t a_offset,
                                                  const float* zero, const float* w, float* c,
                                                  int64_t c_stride, const GemmUkernelParams& p) {
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) mask[j] = TailMask(nc - j * kLanes);

  __m512 acc[MR][NV];
  if (p.flags & kGemmAccumulate) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        acc[i][j] = _mm512_maskz_loadu_ps(mask[j], c + i * c_stride + j * kLanes);
      }
    }
  } else {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const __m512 b =
          p.bias != nullptr ? _mm512_loadu_ps(p.bias + j * kLanes) : _mm512_setzero_ps();
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) acc[i][j] = b;
    }
  }

  if constexpr (kA == ASource::kPacked) {
    // Unrolled: one pointer bump and loop test per 4 steps leaves the vector ports to the FMAs.
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k) {
      Step<MR, NV>(acc, w, [a](int i) { return a[i]; });
      w += kNr;
      a += kMr;
    }
  } else {
    const float* ar[MR];
    for (int64_t t = 0; t < ks; ++t) {
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        if constexpr (kA == ASource::kIndirect) {
          const float* q = a_ptrs[t * kMr + i];
          ar[i] = q != zero ? q + a_offset : zero;
        } else {
          ar[i] = a + i * a_stride;
        }
      }
      for (int64_t k = 0; k < kc; ++k) {
        Step<MR, NV>(acc, w, [&ar, k](int i) { return ar[i][k]; });
        w += kNr;
      }
    }
  }

  if (p.flags & kGemmFinal) {
    if (p.residual != nullptr) {
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) {
          acc[i][j] = _mm512_add_ps(
              acc[i][j],
              _mm512_maskz_loadu_ps(mask[j], p.residual + i * p.residual_stride + j * kLanes));
        }
      }
    }
    const __m512 vmin = _mm512_set1_ps(p.min);
    const __m512 vmax = _mm512_set1_ps(p.max);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        // Operand order keeps NaNs: max/min return the second operand when either is NaN.
        // (The maskz forms avoid a GCC 12 false -Wmaybe-uninitialized in the plain ones.)
        acc[i][j] = _mm512_maskz_min_ps(0xFFFF, vmax, _mm512_maskz_max_ps(0xFFFF, vmin, acc[i][j]));
      }
    }
  }

#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      _mm512_mask_storeu_ps(c + i * c_stride + j * kLanes, mask[j], acc[i][j]);
    }
  }
}

template <int MR, int NV>
void GemmUkernel(int64_t kc, int64_t nc, const float* a, int64_t a_stride, const float* w, float* c,
                 int64_t c_stride, const GemmUkernelParams& p) {
  Kernel<MR, NV, ASource::kStrided>(1, kc, nc, a, a_stride, nullptr, 0, nullptr, w, c, c_stride, p);
}

template <int MR, int NV>
void PackedUkernel(int64_t kc, int64_t nc, const float* a, const float* w, float* c,
                   int64_t c_stride, const GemmUkernelParams& p) {
  Kernel<MR, NV, ASource::kPacked>(1, kc, nc, a, 0, nullptr, 0, nullptr, w, c, c_stride, p);
}

template <int MR, int NV>
void IgemmUkernel(int64_t ks, int64_t kc, int64_t nc, const float* const* a_ptrs, int64_t a_offset,
                  const float* zero, const float* w, float* c, int64_t c_stride,
                  const GemmUkernelParams& p) {
  Kernel<MR, NV, ASource::kIndirect>(ks, kc, nc, nullptr, 0, a_ptrs, a_offset, zero, w, c, c_stride,
                                     p);
}

// Transposes 16 rows of 16 floats in place: r[j] lane i becomes the old r[i] lane j.
__attribute__((always_inline)) inline void Transpose16x16(__m512 r[16]) {
  __m512 u[16];
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    // Per 128-bit lane L of group g (rows 4g..4g+3): u[4g + q] holds column 4L + q.
    const __m512 t0 = _mm512_maskz_unpacklo_ps(0xFFFF, r[4 * g], r[4 * g + 1]);
    const __m512 t1 = _mm512_maskz_unpackhi_ps(0xFFFF, r[4 * g], r[4 * g + 1]);
    const __m512 t2 = _mm512_maskz_unpacklo_ps(0xFFFF, r[4 * g + 2], r[4 * g + 3]);
    const __m512 t3 = _mm512_maskz_unpackhi_ps(0xFFFF, r[4 * g + 2], r[4 * g + 3]);
    u[4 * g] = _mm512_shuffle_ps(t0, t2, 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t0, t2, 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t1, t3, 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t1, t3, 0xEE);
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    // Gather lane L of every group into column 4L + q.
    const __m512 v0 =
        _mm512_maskz_shuffle_f32x4(0xFFFF, u[q], u[4 + q], 0x88);  // g0 L0 L2, g1 L0 L2
    const __m512 v1 =
        _mm512_maskz_shuffle_f32x4(0xFFFF, u[q], u[4 + q], 0xDD);  // g0 L1 L3, g1 L1 L3
    const __m512 v2 =
        _mm512_maskz_shuffle_f32x4(0xFFFF, u[8 + q], u[12 + q], 0x88);  // g2, g3 L0 L2
    const __m512 v3 =
        _mm512_maskz_shuffle_f32x4(0xFFFF, u[8 + q], u[12 + q], 0xDD);  // g2, g3 L1 L3
    r[q] = _mm512_maskz_shuffle_f32x4(0xFFFF, v0, v2, 0x88);
    r[8 + q] = _mm512_maskz_shuffle_f32x4(0xFFFF, v0, v2, 0xDD);
    r[4 + q] = _mm512_maskz_shuffle_f32x4(0xFFFF, v1, v3, 0x88);
    r[12 + q] = _mm512_maskz_shuffle_f32x4(0xFFFF, v1, v3, 0xDD);
  }
}

// GemmPackAFn for kMr rows: 16 K steps of up to 16 rows at a time, loaded as rows and
// transposed in registers, each step stored as kMr floats.
void PackA(int64_t m, int64_t kc, const float* a, int64_t a_stride, float* packed) {
  for (int64_t m0 = 0; m0 < m; m0 += kMr, packed += kMr * kc) {
    const int64_t rows = m - m0 < kMr ? m - m0 : kMr;
    const float* src = a + m0 * a_stride;
    for (int64_t k = 0; k < kc; k += kLanes) {
      const __mmask16 mask = TailMask(kc - k);
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        r[i] = i < rows ? _mm512_maskz_loadu_ps(mask, src + i * a_stride + k) : _mm512_setzero_ps();
      }
      Transpose16x16(r);
      const int64_t steps = kc - k < kLanes ? kc - k : kLanes;
      float* dst = packed + k * kMr;
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) {
        if (j < steps) _mm512_mask_storeu_ps(dst + j * kMr, (1u << kMr) - 1, r[j]);
      }
    }
  }
}

template <int NV, int... M>
void FillRow(GemmConfig* config, std::integer_sequence<int, M...>) {
  ((config->ukernel[NV - 1][M] = &GemmUkernel<M + 1, NV>), ...);
  ((config->igemm[NV - 1][M] = &IgemmUkernel<M + 1, NV>), ...);
  ((config->packed_ukernel[NV - 1][M] = &PackedUkernel<M + 1, NV>), ...);
}

}  // namespace

namespace internal {

void FillGemmConfigAvx512(GemmConfig* config) {
  config->isa = Isa::kAvx512;
  config->name = "f32_gemm_14x32__avx512";
  config->igemm_name = "f32_igemm_14x32__avx512";
  config->mr = kMr;
  config->nr = kNr;
  config->lanes = kLanes;
  config->kc = kKc;
  config->pack_a = &PackA;
  FillRow<1>(config, std::make_integer_sequence<int, kMr>());
  FillRow<2>(config, std::make_integer_sequence<int, kMr>());
}

}  // namespace internal
}  // namespace visionserve::engine::kernels
