#include "engine/kernels/dwconv.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/activation.h"
#include "engine/cpu_features.h"
#include "gtest/gtest.h"

namespace visionserve::engine::kernels {
namespace {

constexpr float kSentinel = 12345.f;
constexpr int64_t kGuard = 64;  // floats of guard before and after every buffer

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (isa <= DetectIsa()) isas.push_back(isa);
  }
  return isas;
}

struct Case {
  int64_t h = 7, w = 7, c = 16;
  int kh = 3, kw = 3;
  int stride = 1;
  int pad_top = 1, pad_left = 1, pad_bottom = 1, pad_right = 1;
  int dilation = 1;
  bool bias = true;
  bool residual = false;
  Activation act = Activation::kNone;
  bool norm = false;
};

std::string Describe(const Case& c, Isa isa) {
  return absl::StrFormat(
      "%s in %dx%dx%d k %dx%d s%d pad t%d l%d b%d r%d dil %d bias=%d residual=%d act=%s "
      "norm=%d",
      IsaName(isa), c.h, c.w, c.c, c.kh, c.kw, c.stride, c.pad_top, c.pad_left, c.pad_bottom,
      c.pad_right, c.dilation, c.bias, c.residual, ActivationName(c.act), c.norm);
}

DwconvParams ParamsOf(const Case& c) {
  DwconvParams p;
  p.in_h = c.h;
  p.in_w = c.w;
  p.channels = c.c;
  p.kernel_h = c.kh;
  p.kernel_w = c.kw;
  p.stride_h = p.stride_w = c.stride;
  p.pad_top = c.pad_top;
  p.pad_left = c.pad_left;
  p.dilation_h = p.dilation_w = c.dilation;
  p.out_h = (c.h + c.pad_top + c.pad_bottom - c.dilation * (c.kh - 1) - 1) / c.stride + 1;
  p.out_w = (c.w + c.pad_left + c.pad_right - c.dilation * (c.kw - 1) - 1) / c.stride + 1;
  p.act = c.act;
  p.channel_norm = c.norm;
  p.norm_eps = 1e-5f;
  return p;
}

// A buffer with NaN guards before and after `n` values (NaN so that a stray read shows up in
// the results, and a stray write is visible in the guard).
struct Guarded {
  explicit Guarded(int64_t n, float guard)
      : data(static_cast<size_t>(n + 2 * kGuard), guard), size(n), guard_value(guard) {}
  float* get() { return data.data() + kGuard; }
  bool GuardsIntact() const {
    for (int64_t i = 0; i < kGuard; ++i) {
      const float a = data[i], b = data[kGuard + size + i];
      const bool same = std::isnan(guard_value) ? std::isnan(a) && std::isnan(b)
                                                : a == guard_value && b == guard_value;
      if (!same) return false;
    }
    return true;
  }
  std::vector<float> data;
  int64_t size;
  float guard_value;
};

void RunCase(Isa isa, const Case& c, uint32_t seed) {
  SCOPED_TRACE(Describe(c, isa));
  const DwconvParams p = ParamsOf(c);
  ASSERT_GE(p.out_h, 1);
  ASSERT_GE(p.out_w, 1);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Guarded input(c.h * c.w * c.c, nan);
  for (int64_t i = 0; i < input.size; ++i) input.get()[i] = u(rng);
  std::vector<float> weight(static_cast<size_t>(c.c * c.kh * c.kw));
  for (float& v : weight) v = 0.5f * u(rng);
  std::vector<float> bias(static_cast<size_t>(c.c));
  for (float& v : bias) v = 0.2f * u(rng);
  const int64_t out_size = p.out_h * p.out_w * c.c;
  Guarded residual(out_size, nan);
  for (int64_t i = 0; i < out_size; ++i) residual.get()[i] = u(rng);

  std::vector<float> expected(static_cast<size_t>(out_size));
  DwconvRef(p, input.get(), weight.data(), c.bias ? bias.data() : nullptr,
            c.residual ? residual.get() : nullptr, expected.data(), 0, p.out_h);

  const DwconvPackedWeights packed =
      DwconvPackedWeights::Pack(c.c, c.kh, c.kw, weight.data(), c.bias ? bias.data() : nullptr);
  const DwconvKernel kernel =
      GetDwconvKernel(isa, c.kh, c.kw, c.stride, c.stride, c.dilation, c.dilation);
  ASSERT_NE(kernel.fn, nullptr);
  Guarded output(out_size, kSentinel);
  std::vector<float> scratch(static_cast<size_t>(DwconvScratchFloats(p)) + 16, kSentinel);
  // 64-byte aligned, as the op's per-thread scratch.
  float* scratch_ptr =
      scratch.data() + (16 - reinterpret_cast<uintptr_t>(scratch.data()) / 4 % 16) % 16;
  // Tiles as an op could cut them: bands of 1, 2 and the rest of the rows, and (without the
  // channel norm) channel groups of 16 and the rest. Each call must write exactly its range.
  std::vector<DwconvRange> ranges;
  const std::vector<int64_t> splits =
      c.norm || c.c <= 16 ? std::vector<int64_t>{0, c.c} : std::vector<int64_t>{0, 16, c.c};
  int64_t oy = 0;
  for (int64_t band : {int64_t{1}, int64_t{2}, p.out_h}) {
    const int64_t end = std::min(p.out_h, oy + band);
    if (oy >= end) break;
    for (size_t g = 0; g + 1 < splits.size(); ++g)
      ranges.push_back({oy, end, splits[g], splits[g + 1]});
    oy = end;
  }
  for (const DwconvRange& r : ranges) {
    kernel.fn(p, input.get(), packed.weights(), packed.bias(),
              c.residual ? residual.get() : nullptr, output.get(), r, scratch_ptr);
    // Everything after this range (in call order) is still untouched.
    for (int64_t y = r.oy_begin; y < p.out_h; ++y) {
      for (int64_t x = 0; x < p.out_w; ++x) {
        for (int64_t ch = 0; ch < c.c; ++ch) {
          const bool written = y < r.oy_end && ch < r.c_end;
          if (!written) {
            ASSERT_EQ(output.get()[(y * p.out_w + x) * c.c + ch], kSentinel)
                << "range rows [" << r.oy_begin << ", " << r.oy_end << ") channels [" << r.c_begin
                << ", " << r.c_end << ") wrote y=" << y << " c=" << ch;
          }
        }
      }
    }
  }
  EXPECT_TRUE(output.GuardsIntact()) << "wrote outside the output";
  EXPECT_TRUE(input.GuardsIntact());

  // Sums of k² products in float: a few ulps of the sum of magnitudes (≤ ~k²·0.5 here); the
  // channel norm divides by the pixel's standard deviation, so it gets an absolute bound.
  const double tol_rel = 4e-6 * std::sqrt(static_cast<double>(c.kh * c.kw));
  int failures = 0;
  for (int64_t i = 0; i < out_size; ++i) {
    const double got = kernel.fn != nullptr ? output.get()[i] : 0.0;
    const double want = expected[static_cast<size_t>(i)];
    const double tol = c.norm ? 2e-4 : tol_rel * std::max(1.0, std::abs(want));
    if (!(std::abs(got - want) <= tol) && ++failures <= 5) {
      const int64_t pixel = i / c.c;
      ADD_FAILURE() << absl::StrFormat("%s: oy=%d ox=%d c=%d got %.8g want %.8g", kernel.name,
                                       pixel / p.out_w, pixel % p.out_w, i % c.c, got, want);
    }
  }
  EXPECT_EQ(failures, 0);
}

TEST(DwconvKernelTest, PicksUnrolledKernelsForSquareStride1And2) {
  for (Isa isa : SupportedIsas()) {
    const std::string suffix = absl::StrFormat("__%s", IsaName(isa));
    EXPECT_EQ(GetDwconvKernel(isa, 3, 3, 1, 1, 1, 1).name, "f32_dwconv_3x3" + suffix);
    EXPECT_EQ(GetDwconvKernel(isa, 5, 5, 2, 2, 1, 1).name, "f32_dwconv_5x5" + suffix);
    EXPECT_EQ(GetDwconvKernel(isa, 7, 7, 1, 1, 1, 1).name, "f32_dwconv_7x7" + suffix);
    EXPECT_EQ(GetDwconvKernel(isa, 3, 3, 1, 1, 2, 2).name, "f32_dwconv_kxk" + suffix);
    EXPECT_EQ(GetDwconvKernel(isa, 3, 3, 3, 3, 1, 1).name, "f32_dwconv_kxk" + suffix);
    EXPECT_EQ(GetDwconvKernel(isa, 3, 5, 1, 1, 1, 1).name, "f32_dwconv_kxk" + suffix);
    EXPECT_EQ(GetDwconvKernel(isa, 3, 3, 1, 2, 1, 1).name, "f32_dwconv_kxk" + suffix);
    EXPECT_EQ(GetDwconvKernel(isa, 9, 9, 1, 1, 1, 1).name, "f32_dwconv_kxk" + suffix);
  }
}

// Every fast-path kernel size and stride over odd sizes, channel counts around the vector
// widths, and all paddings from none to k − 1 on each side (symmetric and not).
TEST(DwconvKernelTest, FastPathsMatchReferenceOverEdgeShapes) {
  uint32_t seed = 1;
  for (Isa isa : SupportedIsas()) {
    for (int k : {3, 5, 7}) {
      for (int stride : {1, 2}) {
        for (auto [h, w] : {std::pair<int64_t, int64_t>{7, 7}, {9, 5}, {1, 1}, {12, 19}}) {
          for (int64_t c : {1, 3, 15, 16, 17, 33, 100}) {
            for (auto [pt, pl, pb, pr] :
                 {std::tuple<int, int, int, int>{k / 2, k / 2, k / 2, k / 2},
                  {0, 0, 0, 0},
                  {k - 1, k - 1, k - 1, k - 1},
                  {0, k - 1, k / 2, 1},
                  {k / 2, 0, 0, k / 2}}) {
              Case cs;
              cs.h = h, cs.w = w, cs.c = c, cs.kh = cs.kw = k, cs.stride = stride;
              cs.pad_top = pt, cs.pad_left = pl, cs.pad_bottom = pb, cs.pad_right = pr;
              const DwconvParams p = ParamsOf(cs);
              if (p.out_h < 1 || p.out_w < 1) continue;
              RunCase(isa, cs, seed++);
              if (::testing::Test::HasFatalFailure()) return;
            }
          }
        }
      }
    }
  }
}

TEST(DwconvKernelTest, GenericPathMatchesReference) {
  uint32_t seed = 100;
  for (Isa isa : SupportedIsas()) {
    for (auto [kh, kw, stride, dil] : {std::tuple<int, int, int, int>{1, 1, 1, 1},
                                       {3, 3, 1, 2},
                                       {3, 5, 1, 1},
                                       {4, 4, 2, 1},
                                       {9, 9, 1, 1},
                                       {3, 3, 3, 1},
                                       {2, 2, 2, 1},
                                       {5, 5, 2, 2}}) {
      for (int64_t c : {1, 15, 17, 40}) {
        for (int pad : {0, 1, 2}) {
          Case cs;
          cs.h = 11, cs.w = 9, cs.c = c, cs.kh = kh, cs.kw = kw, cs.stride = stride;
          cs.dilation = dil;
          cs.pad_top = cs.pad_left = pad;
          cs.pad_bottom = cs.pad_right = (pad + 1) / 2;
          const DwconvParams p = ParamsOf(cs);
          if (p.out_h < 1 || p.out_w < 1) continue;
          RunCase(isa, cs, seed++);
        }
      }
    }
  }
}

TEST(DwconvKernelTest, EpilogueMatchesReference) {
  uint32_t seed = 500;
  for (Isa isa : SupportedIsas()) {
    for (Activation act : {Activation::kNone, Activation::kReLU, Activation::kReLU6,
                           Activation::kSiLU, Activation::kGELU, Activation::kHardSwish,
                           Activation::kSigmoid, Activation::kHardSigmoid}) {
      for (bool residual : {false, true}) {
        for (bool bias : {false, true}) {
          for (int k : {3, 7, 4}) {
            Case cs;
            cs.h = 9, cs.w = 13, cs.c = 37, cs.kh = cs.kw = k;
            cs.pad_top = cs.pad_left = cs.pad_bottom = cs.pad_right = k / 2;
            cs.act = act, cs.residual = residual, cs.bias = bias;
            RunCase(isa, cs, seed++);
          }
        }
      }
    }
  }
}

TEST(DwconvKernelTest, FusedChannelNormMatchesReference) {
  uint32_t seed = 900;
  for (Isa isa : SupportedIsas()) {
    for (int64_t c : {1, 3, 17, 96, 100}) {
      for (int k : {7, 3, 2}) {
        for (int stride : {1, 2}) {
          Case cs;
          cs.h = 10, cs.w = 9, cs.c = c, cs.kh = cs.kw = k, cs.stride = stride;
          cs.pad_top = cs.pad_left = cs.pad_bottom = cs.pad_right = k / 2;
          cs.norm = true;
          cs.residual = c == 17;
          cs.act = c == 96 ? Activation::kGELU : Activation::kNone;
          RunCase(isa, cs, seed++);
        }
      }
    }
  }
}

// Output aliasing the residual: every element is read before it is written.
TEST(DwconvKernelTest, ResidualMayAliasOutput) {
  for (Isa isa : SupportedIsas()) {
    Case cs;
    cs.h = 8, cs.w = 8, cs.c = 20, cs.kh = cs.kw = 3;
    const DwconvParams p = ParamsOf(cs);
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> in(static_cast<size_t>(8 * 8 * 20)), w(20 * 9), b(20);
    for (float& v : in) v = u(rng);
    for (float& v : w) v = u(rng);
    for (float& v : b) v = u(rng);
    std::vector<float> res(in.size()), want(in.size());
    for (float& v : res) v = u(rng);
    DwconvRef(p, in.data(), w.data(), b.data(), res.data(), want.data(), 0, p.out_h);
    const auto packed = DwconvPackedWeights::Pack(20, 3, 3, w.data(), b.data());
    std::vector<float> scratch(static_cast<size_t>(DwconvScratchFloats(p)));
    GetDwconvKernel(isa, 3, 3, 1, 1, 1, 1)
        .fn(p, in.data(), packed.weights(), packed.bias(), res.data(), res.data(),
            {0, p.out_h, 0, 20}, scratch.data());
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(res[i], want[i], 1e-5) << i;
  }
}

}  // namespace
}  // namespace visionserve::engine::kernels
