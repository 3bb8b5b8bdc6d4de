#include "engine/kernels/dwconv.h"

#include <cmath>
#include <cstring>

#include "engine/kernels/activation_kernels.h"
#include "engine/kernels/dwconv_impl.h"
#include "engine/kernels/simd_portable.h"

namespace visionserve::engine::kernels {

namespace {

struct DwconvTables {
  internal::DwconvKernelSet portable;
  internal::DwconvKernelSet avx2;
  internal::DwconvKernelSet avx512;
};

const DwconvTables& Tables() {
  static const DwconvTables tables = [] {
    DwconvTables t;
    using V = simd::PortableVec;
    t.portable.fn[0] = &dwconv_impl::Dwconv<V, 3>;
    t.portable.fn[1] = &dwconv_impl::Dwconv<V, 5>;
    t.portable.fn[2] = &dwconv_impl::Dwconv<V, 7>;
    t.portable.fn[3] = &dwconv_impl::Dwconv<V, 0>;
    internal::FillDwconvKernelsAvx2(&t.avx2);
    internal::FillDwconvKernelsAvx512(&t.avx512);
    return t;
  }();
  return tables;
}

constexpr std::string_view kNames[3][4] = {
    {"f32_dwconv_3x3__portable", "f32_dwconv_5x5__portable", "f32_dwconv_7x7__portable",
     "f32_dwconv_kxk__portable"},
    {"f32_dwconv_3x3__avx2", "f32_dwconv_5x5__avx2", "f32_dwconv_7x7__avx2",
     "f32_dwconv_kxk__avx2"},
    {"f32_dwconv_3x3__avx512", "f32_dwconv_5x5__avx512", "f32_dwconv_7x7__avx512",
     "f32_dwconv_kxk__avx512"},
};

}  // namespace

DwconvKernel GetDwconvKernel(Isa isa, int kernel_h, int kernel_w, int stride_h, int stride_w,
                             int dilation_h, int dilation_w) {
  int index = 3;
  const bool fast_shape = kernel_h == kernel_w && stride_h == stride_w &&
                          (stride_h == 1 || stride_h == 2) && dilation_h == 1 && dilation_w == 1;
  if (fast_shape && kernel_h == 3) index = 0;
  if (fast_shape && kernel_h == 5) index = 1;
  if (fast_shape && kernel_h == 7) index = 2;
  const DwconvTables& t = Tables();
  const internal::DwconvKernelSet& set =
      isa == Isa::kAvx512 ? t.avx512 : (isa == Isa::kAvx2 ? t.avx2 : t.portable);
  return {set.fn[index], kNames[static_cast<int>(isa)][index]};
}

DwconvPackedWeights DwconvPackedWeights::Pack(int64_t channels, int kernel_h, int kernel_w,
                                              const float* weight, const float* bias) {
  DwconvPackedWeights w;
  w.channels_ = channels;
  w.kernel_h_ = kernel_h;
  w.kernel_w_ = kernel_w;
  const int64_t cp = DwconvPaddedChannels(channels);
  const int64_t taps = static_cast<int64_t>(kernel_h) * kernel_w;
  w.weights_ = MakeAligned<float>(static_cast<size_t>(taps * cp));
  w.bias_ = MakeAligned<float>(static_cast<size_t>(cp));
  std::memset(w.weights_.get(), 0, static_cast<size_t>(taps * cp) * sizeof(float));
  std::memset(w.bias_.get(), 0, static_cast<size_t>(cp) * sizeof(float));
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t t = 0; t < taps; ++t) w.weights_[t * cp + c] = weight[c * taps + t];
    if (bias != nullptr) w.bias_[c] = bias[c];
  }
  return w;
}

int64_t DwconvScratchFloats(const DwconvParams& p) {
  return static_cast<int64_t>(p.kernel_h) *
         DwconvStagedRowPixels(p.in_w, p.out_w, p.stride_w, p.kernel_w, p.pad_left) *
         DwconvPassChannels(p);
}

size_t DwconvPackedWeights::bytes() const {
  const int64_t cp = DwconvPaddedChannels(channels_);
  return static_cast<size_t>((static_cast<int64_t>(kernel_h_) * kernel_w_ + 1) * cp) *
         sizeof(float);
}

void DwconvRef(const DwconvParams& p, const float* input, const float* weight, const float* bias,
               const float* residual, float* output, int64_t oy_begin, int64_t oy_end) {
  const int64_t c = p.channels;
  const int64_t taps = static_cast<int64_t>(p.kernel_h) * p.kernel_w;
  for (int64_t oy = oy_begin; oy < oy_end; ++oy) {
    for (int64_t ox = 0; ox < p.out_w; ++ox) {
      float* o = output + (oy * p.out_w + ox) * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        double acc = bias != nullptr ? bias[ch] : 0.0;
        for (int ky = 0; ky < p.kernel_h; ++ky) {
          const int64_t iy = oy * p.stride_h - p.pad_top + static_cast<int64_t>(ky) * p.dilation_h;
          if (iy < 0 || iy >= p.in_h) continue;
          for (int kx = 0; kx < p.kernel_w; ++kx) {
            const int64_t ix =
                ox * p.stride_w - p.pad_left + static_cast<int64_t>(kx) * p.dilation_w;
            if (ix < 0 || ix >= p.in_w) continue;
            acc += static_cast<double>(weight[ch * taps + ky * p.kernel_w + kx]) *
                   input[(iy * p.in_w + ix) * c + ch];
          }
        }
        if (residual != nullptr) acc += residual[(oy * p.out_w + ox) * c + ch];
        const float sum = static_cast<float>(acc);
        ActivationRef(p.act, &sum, o + ch, 1);
      }
      if (p.channel_norm) {
        double mean = 0, var = 0;
        for (int64_t ch = 0; ch < c; ++ch) mean += o[ch];
        mean /= static_cast<double>(c);
        for (int64_t ch = 0; ch < c; ++ch) var += (o[ch] - mean) * (o[ch] - mean);
        var /= static_cast<double>(c);
        const double inv = 1.0 / std::sqrt(var + p.norm_eps);
        for (int64_t ch = 0; ch < c; ++ch) o[ch] = static_cast<float>((o[ch] - mean) * inv);
      }
    }
  }
}

}  // namespace visionserve::engine::kernels
