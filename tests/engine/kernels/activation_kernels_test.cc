#include "engine/kernels/activation_kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/activation.h"
#include "engine/cpu_features.h"
#include "gtest/gtest.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace visionserve::engine::kernels {
namespace {

constexpr Activation kAll[] = {
    Activation::kNone, Activation::kReLU,    Activation::kReLU6,     Activation::kSiLU,
    Activation::kGELU, Activation::kSigmoid, Activation::kHardSwish, Activation::kHardSigmoid};

// The documented bounds (activation_kernels.cc): |y − ref| ≤ rel·|ref| + abs.
struct Bound {
  double rel;
  double abs;
};
Bound BoundOf(Activation act) {
  switch (act) {
    case Activation::kNone:
    case Activation::kReLU:
    case Activation::kReLU6:
      return {0, 0};
    case Activation::kHardSigmoid:
      return {1.3e-7, 0};
    case Activation::kHardSwish:
      return {2.6e-7, 0};
    case Activation::kSigmoid:
      return {2.8e-7, 1.2e-38};
    case Activation::kSiLU:
      return {3.2e-7, 1.1e-36};
    case Activation::kGELU:
      return {6.8e-7, 1.2e-38};
  }
  return {0, 0};
}

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (isa <= DetectIsa()) isas.push_back(isa);
  }
  return isas;
}

// Sets or clears FTZ/DAZ for the scope (the engine's workers run with them set; a test thread
// may have either, depending on what ran before).
class ScopedFlushDenormals {
 public:
  explicit ScopedFlushDenormals(bool flush) {
#if defined(__x86_64__) || defined(__i386__)
    saved_ = _mm_getcsr();
    _mm_setcsr(flush ? (saved_ | 0x8040u) : (saved_ & ~0x8040u));
#else
    (void)flush;
#endif
  }
  ~ScopedFlushDenormals() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(saved_);
#endif
  }

 private:
  unsigned saved_ = 0;
};

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Specials, a sample of every binade (both signs), dense sweeps around zero and the kernels'
// internal break points, and random values.
std::vector<float> SweepInputs() {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {0.f,
                          -0.f,
                          kInf,
                          -kInf,
                          std::numeric_limits<float>::quiet_NaN(),
                          -std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::min(),
                          -std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::denorm_min(),
                          -std::numeric_limits<float>::denorm_min(),
                          std::numeric_limits<float>::max(),
                          -std::numeric_limits<float>::max(),
                          -3.f,
                          3.f,
                          6.f,
                          -6.f,
                          0.75f,
                          -0.75f,
                          std::nextafter(0.75f, 1.f),
                          std::nextafter(-0.75f, -1.f),
                          14.5f,
                          -14.5f,
                          -87.33654f,
                          87.33654f,
                          -88.f,
                          -103.f};
  for (uint32_t exponent = 0; exponent < 255; ++exponent) {
    for (uint32_t k = 0; k < 97; ++k) {
      const uint32_t mantissa = (k * 86477u + exponent * 7919u) & 0x7FFFFFu;
      const uint32_t bits = (exponent << 23) | mantissa;
      x.push_back(FromBits(bits));
      x.push_back(FromBits(bits | 0x80000000u));
    }
  }
  for (int i = -20 * 2048; i <= 20 * 2048; ++i) x.push_back(static_cast<float>(i) / 2048.f);
  for (float center : {-87.33654f, -13.2f, -6.f, -3.f, -0.75f, 0.75f, 3.f, 6.f}) {
    float v = center;
    for (int i = 0; i < 300; ++i) v = std::nextafter(v, -1000.f);
    for (int i = 0; i < 600; ++i, v = std::nextafter(v, 1000.f)) x.push_back(v);
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-30.f, 30.f);
  for (int i = 0; i < 100000; ++i) x.push_back(u(rng));
  return x;
}

// Runs `act` at `isa` over the sweep and checks every output against the documented bound.
void CheckSweep(Activation act, Isa isa, bool flush, const std::vector<float>& x,
                const std::vector<float>& ref) {
  SCOPED_TRACE(absl::StrFormat("%s %s ftz/daz=%d", ActivationName(act), IsaName(isa), flush));
  // With FTZ/DAZ subnormal inputs and results are zero: 2^-126 more absolute error.
  Bound bound = BoundOf(act);
  if (flush) bound.abs = std::max(bound.abs, 1.1754944e-38);
  const ScopedFlushDenormals mode(flush);
  ActivationFn fn = GetActivationKernel(act, isa);
  ASSERT_NE(fn, nullptr);
  std::vector<float> y(x.size(), 0.f);
  fn(x.data(), y.data(), static_cast<int64_t>(x.size()));
  double worst_rel = 0;
  int failures = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(ref[i])) {
      if (!std::isnan(y[i]) && ++failures <= 5) {
        ADD_FAILURE() << absl::StrFormat("x=%.9g: expected NaN, got %.9g", x[i], y[i]);
      }
      continue;
    }
    if (std::isinf(ref[i])) {
      if (y[i] != ref[i] && ++failures <= 5) {
        ADD_FAILURE() << absl::StrFormat("x=%.9g: expected %g, got %.9g", x[i], ref[i], y[i]);
      }
      continue;
    }
    const double err = std::abs(double{y[i]} - double{ref[i]});
    const double mag = std::abs(double{ref[i]});
    if (mag > 1e-30) worst_rel = std::max(worst_rel, err / mag);
    if (!(err <= bound.rel * mag + bound.abs) && ++failures <= 5) {
      ADD_FAILURE() << absl::StrFormat("x=%.9g (0x%08x): got %.9g, ref %.9g, rel err %.3g", x[i],
                                       std::bit_cast<uint32_t>(x[i]), y[i], ref[i],
                                       err / std::max(mag, 1e-45));
    }
  }
  EXPECT_EQ(failures, 0);
  std::printf("  %-12s %-9s ftz/daz=%d max rel err %.3g\n",
              std::string(ActivationName(act)).c_str(), std::string(IsaName(isa)).c_str(), flush,
              worst_rel);
}

TEST(ActivationKernelsTest, MatchReferenceWithinDocumentedBounds) {
  const std::vector<float> x = SweepInputs();
  std::vector<float> ref(x.size());
  for (Activation act : kAll) {
    {
      const ScopedFlushDenormals exact(false);  // the reference itself sees subnormals as such
      ActivationRef(act, x.data(), ref.data(), static_cast<int64_t>(x.size()));
    }
    for (const bool flush : {false, true}) {
      for (Isa isa : SupportedIsas()) CheckSweep(act, isa, flush, x, ref);
    }
  }
}

TEST(ActivationKernelsTest, InPlaceMatchesOutOfPlace) {
  const std::vector<float> x = SweepInputs();
  for (Activation act : kAll) {
    for (Isa isa : SupportedIsas()) {
      SCOPED_TRACE(absl::StrFormat("%s %s", ActivationName(act), IsaName(isa)));
      ActivationFn fn = GetActivationKernel(act, isa);
      std::vector<float> y(x.size()), z = x;
      fn(x.data(), y.data(), static_cast<int64_t>(x.size()));
      fn(z.data(), z.data(), static_cast<int64_t>(z.size()));
      EXPECT_EQ(std::memcmp(y.data(), z.data(), y.size() * sizeof(float)), 0);
    }
  }
}

// Every length up to three AVX-512 vectors plus one, at unaligned offsets: the tail is computed
// like the body and nothing past n is written.
TEST(ActivationKernelsTest, TailsMatchBodyAndStayInBounds) {
  constexpr float kSentinel = 12345.f;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-8.f, 8.f);
  std::vector<float> x(64);
  for (float& v : x) v = u(rng);
  for (Activation act : kAll) {
    for (Isa isa : SupportedIsas()) {
      ActivationFn fn = GetActivationKernel(act, isa);
      for (int64_t offset : {0, 1, 3}) {
        for (int64_t n = 0; n <= 49; ++n) {
          SCOPED_TRACE(absl::StrFormat("%s %s n=%d offset=%d", ActivationName(act), IsaName(isa), n,
                                       offset));
          std::vector<float> y(static_cast<size_t>(n + offset + 8), kSentinel);
          fn(x.data() + offset, y.data() + offset, n);
          for (int64_t i = 0; i < offset; ++i) ASSERT_EQ(y[i], kSentinel);
          for (int64_t i = 0; i < n; ++i) {
            // The body processes the same lanes at another alignment: results must agree.
            std::vector<float> one(1);
            fn(x.data() + offset + i, one.data(), 1);
            ASSERT_EQ(std::bit_cast<uint32_t>(y[offset + i]), std::bit_cast<uint32_t>(one[0]))
                << "i=" << i;
          }
          for (size_t i = static_cast<size_t>(n + offset); i < y.size(); ++i) {
            ASSERT_EQ(y[i], kSentinel) << "wrote past n at " << i;
          }
        }
      }
    }
  }
}

TEST(ActivationKernelsTest, NoneCopiesAndLeavesInPlaceAlone) {
  for (Isa isa : SupportedIsas()) {
    ActivationFn fn = GetActivationKernel(Activation::kNone, isa);
    std::vector<float> x = {1.f, -2.f, 3.5f}, y(3, 0.f);
    fn(x.data(), y.data(), 3);
    EXPECT_EQ(x, y);
    fn(x.data(), x.data(), 3);
    EXPECT_EQ(x, (std::vector<float>{1.f, -2.f, 3.5f}));
  }
}

}  // namespace
}  // namespace visionserve::engine::kernels
