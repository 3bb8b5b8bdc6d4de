#include "engine/kernels/normalization_kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/kernels/normalization_impl.h"
#include "engine/kernels/simd_portable.h"

namespace visionserve::engine::kernels {

namespace {

struct Tables {
  NormalizationKernels by_isa[3];
};

const Tables& GetTables() {
  static const Tables tables = [] {
    Tables t;
    using V = simd::PortableVec;
    t.by_isa[0] = {&norm_impl::NormalizePixels<V>, &norm_impl::SoftmaxRows<V>,
                   "f32_layernorm__portable", "f32_softmax__portable"};
    internal::NormalizationKernelSet avx2, avx512;
    internal::FillNormalizationKernelsAvx2(&avx2);
    internal::FillNormalizationKernelsAvx512(&avx512);
    t.by_isa[1] = {avx2.layernorm, avx2.softmax, "f32_layernorm__avx2", "f32_softmax__avx2"};
    t.by_isa[2] = {avx512.layernorm, avx512.softmax, "f32_layernorm__avx512",
                   "f32_softmax__avx512"};
    return t;
  }();
  return tables;
}

}  // namespace

const NormalizationKernels& GetNormalizationKernels(Isa isa) {
  return GetTables().by_isa[static_cast<int>(isa)];
}

void LayerNormRef(const float* x, float* y, int64_t rows, int64_t channels, const float* gamma,
                  const float* beta, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    double mean = 0, var = 0;
    for (int64_t c = 0; c < channels; ++c) mean += xr[c];
    mean /= static_cast<double>(channels);
    for (int64_t c = 0; c < channels; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= static_cast<double>(channels);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t c = 0; c < channels; ++c) {
      double v = (xr[c] - mean) * inv;
      if (gamma != nullptr) v = v * gamma[c] + beta[c];
      y[r * channels + c] = static_cast<float>(v);
    }
  }
}

void SoftmaxRef(const float* x, float* y, int64_t rows, int64_t channels) {
  std::vector<double> e(static_cast<size_t>(channels));
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    const double m = *std::max_element(xr, xr + channels);
    double sum = 0;
    for (int64_t c = 0; c < channels; ++c) sum += e[c] = std::exp(xr[c] - m);
    for (int64_t c = 0; c < channels; ++c) y[r * channels + c] = static_cast<float>(e[c] / sum);
  }
}

}  // namespace visionserve::engine::kernels
