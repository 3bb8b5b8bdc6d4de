#include "engine/kernels/pooling_kernels.h"

#include <cmath>
#include <limits>

#include "engine/kernels/pooling_impl.h"
#include "engine/kernels/simd_portable.h"

namespace visionserve::engine::kernels {

namespace {

struct Tables {
  PoolingKernels by_isa[3];
};

const Tables& GetTables() {
  static const Tables tables = [] {
    Tables t;
    using V = simd::PortableVec;
    t.by_isa[0] = {&pooling_impl::GlobalAvgPool<V>, &pooling_impl::MaxPool<V>,
                   "f32_gavgpool__portable", "f32_maxpool__portable"};
    internal::PoolingKernelSet avx2, avx512;
    internal::FillPoolingKernelsAvx2(&avx2);
    internal::FillPoolingKernelsAvx512(&avx512);
    t.by_isa[1] = {avx2.gavgpool, avx2.maxpool, "f32_gavgpool__avx2", "f32_maxpool__avx2"};
    t.by_isa[2] = {avx512.gavgpool, avx512.maxpool, "f32_gavgpool__avx512", "f32_maxpool__avx512"};
    return t;
  }();
  return tables;
}

}  // namespace

const PoolingKernels& GetPoolingKernels(Isa isa) {
  return GetTables().by_isa[static_cast<int>(isa)];
}

void GlobalAvgPoolRef(const float* x, int64_t pixels, int64_t stride, int64_t channels, float* y) {
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0;
    for (int64_t p = 0; p < pixels; ++p) sum += x[p * stride + c];
    y[c] = static_cast<float>(sum / static_cast<double>(pixels));
  }
}

void MaxPoolRef(const MaxPoolParams& p, const float* input, float* output, int64_t oy_begin,
                int64_t oy_end) {
  for (int64_t oy = oy_begin; oy < oy_end; ++oy) {
    for (int64_t ox = 0; ox < p.out_w; ++ox) {
      for (int64_t c = 0; c < p.channels; ++c) {
        float m = -std::numeric_limits<float>::infinity();
        for (int ky = 0; ky < p.kernel_h; ++ky) {
          const int64_t iy = oy * p.stride_h - p.pad_top + ky;
          if (iy < 0 || iy >= p.in_h) continue;
          for (int kx = 0; kx < p.kernel_w; ++kx) {
            const int64_t ix = ox * p.stride_w - p.pad_left + kx;
            if (ix < 0 || ix >= p.in_w) continue;
            const float v = input[(iy * p.in_w + ix) * p.channels + c];
            if (std::isnan(v) || std::isnan(m)) {
              m = std::numeric_limits<float>::quiet_NaN();
            } else if (v > m) {
              m = v;
            }
          }
        }
        output[(oy * p.out_w + ox) * p.channels + c] = m;
      }
    }
  }
}

}  // namespace visionserve::engine::kernels
