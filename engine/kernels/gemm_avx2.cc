// AVX2+FMA GEMM microkernels: f32_gemm_<m>x16__avx2 and f32_igemm_<m>x16__avx2 for m = 1..6.
//
// 6 rows × 2 ymm of C in 12 accumulators, two packed B vectors and one broadcast per k (15 of
// the 16 ymm registers). Column tails use vmaskmov loads and stores. Compiled with AVX2 flags:
// it must not instantiate inline functions or templates from shared headers (the linker could
// pick the AVX2 copy for baseline code), so it uses only intrinsics and internal-linkage code.

#include <immintrin.h>

#include <cstdint>
#include <utility>

#include "engine/kernels/gemm.h"

namespace visionserve::engine::kernels {
namespace {

constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr int kLanes = 8;
constexpr int kKc = 384;

// Loading 8 ints at kMaskTable + 8 - valid gives `valid` leading all-ones lanes.
alignas(64) constexpr int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};

__m256i TailMask(int64_t valid) {
  const int64_t v = valid >= kLanes ? kLanes : (valid <= 0 ? 0 : valid);
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + kLanes - v));
}

// MR rows × NV vectors of C; the packed panel is kNr floats wide. Direct: row i of A at
// a + i·a_stride. Indirect: ks taps of kc channels, row i of tap t at a_ptrs[t·kMr + i]
// (+ a_offset unless it is `zero`).
template <int MR, int NV, bool kIndirect>
__attribute__((always_inline)) inline void Kernel(int64_t ks, int64_t kc, int64_t nc,
                                                  const float* a, int64_t a_stride,
                                                  const float* const* a_ptrs, int64_t a_offset,
                                                  const float* zero, const float* w, float* c,
                                                  int64_t c_stride, const GemmUkernelParams& p) {
  const bool full = nc >= NV * kLanes;
  __m256i mask[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) mask[j] = TailMask(nc - j * kLanes);

  __m256 acc[MR][NV];
  if (p.flags & kGemmAccumulate) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* ci = c + i * c_stride + j * kLanes;
        acc[i][j] = full ? _mm256_loadu_ps(ci) : _mm256_maskload_ps(ci, mask[j]);
      }
    }
  } else {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const __m256 b =
          p.bias != nullptr ? _mm256_loadu_ps(p.bias + j * kLanes) : _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][j] = b;
    }
  }

  const float* ar[MR];
  for (int64_t t = 0; t < ks; ++t) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      if constexpr (kIndirect) {
        const float* q = a_ptrs[t * kMr + i];
        ar[i] = q != zero ? q + a_offset : zero;
      } else {
        ar[i] = a + i * a_stride;
      }
    }
    for (int64_t k = 0; k < kc; ++k) {
      __m256 b[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) b[j] = _mm256_load_ps(w + j * kLanes);
      w += kNr;
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 av = _mm256_broadcast_ss(ar[i] + k);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_fmadd_ps(av, b[j], acc[i][j]);
      }
    }
  }

  if (p.flags & kGemmFinal) {
    if (p.residual != nullptr) {
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) {
          const float* ri = p.residual + i * p.residual_stride + j * kLanes;
          acc[i][j] = _mm256_add_ps(acc[i][j],
                                    full ? _mm256_loadu_ps(ri) : _mm256_maskload_ps(ri, mask[j]));
        }
      }
    }
    const __m256 vmin = _mm256_set1_ps(p.min);
    const __m256 vmax = _mm256_set1_ps(p.max);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        // Operand order keeps NaNs: max/min return the second operand when either is NaN.
        acc[i][j] = _mm256_min_ps(vmax, _mm256_max_ps(vmin, acc[i][j]));
      }
    }
  }

#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* ci = c + i * c_stride + j * kLanes;
      if (full) {
        _mm256_storeu_ps(ci, acc[i][j]);
      } else {
        _mm256_maskstore_ps(ci, mask[j], acc[i][j]);
      }
    }
  }
}

template <int MR, int NV>
void GemmUkernel(int64_t kc, int64_t nc, const float* a, int64_t a_stride, const float* w, float* c,
                 int64_t c_stride, const GemmUkernelParams& p) {
  Kernel<MR, NV, false>(1, kc, nc, a, a_stride, nullptr, 0, nullptr, w, c, c_stride, p);
}

template <int MR, int NV>
void IgemmUkernel(int64_t ks, int64_t kc, int64_t nc, const float* const* a_ptrs, int64_t a_offset,
                  const float* zero, const float* w, float* c, int64_t c_stride,
                  const GemmUkernelParams& p) {
  Kernel<MR, NV, true>(ks, kc, nc, nullptr, 0, a_ptrs, a_offset, zero, w, c, c_stride, p);
}

template <int NV, int... M>
void FillRow(GemmConfig* config, std::integer_sequence<int, M...>) {
  ((config->ukernel[NV - 1][M] = &GemmUkernel<M + 1, NV>), ...);
  ((config->igemm[NV - 1][M] = &IgemmUkernel<M + 1, NV>), ...);
}

}  // namespace

namespace internal {

void FillGemmConfigAvx2(GemmConfig* config) {
  config->isa = Isa::kAvx2;
  config->name = "f32_gemm_6x16__avx2";
  config->igemm_name = "f32_igemm_6x16__avx2";
  config->mr = kMr;
  config->nr = kNr;
  config->lanes = kLanes;
  config->kc = kKc;
  FillRow<1>(config, std::make_integer_sequence<int, kMr>());
  FillRow<2>(config, std::make_integer_sequence<int, kMr>());
}

}  // namespace internal
}  // namespace visionserve::engine::kernels
