#include "engine/kernels/gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/activation.h"
#include "engine/cpu_features.h"
#include "engine/tensor.h"
#include "gtest/gtest.h"

namespace visionserve::engine {
// Test parameter names: "avx512" rather than the enum's bytes.
void PrintTo(Isa isa, std::ostream* os) { *os << IsaName(isa); }
}  // namespace visionserve::engine

namespace visionserve::engine::kernels {
namespace {

constexpr float kSentinel = 12345.f;

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

struct Case {
  int64_t m, n, k;
  bool bias = false;
  bool residual = false;
  Activation act = Activation::kNone;
  int64_t lda_pad = 0, ldc_pad = 0, ldr_pad = 0;
  bool copy_a = false;
  int threads = 1;  // tiles from PlanGemmTiling for this many threads
  bool fetch = false;
  bool no_scratch = false;  // GemmTile without scratch: A strided in place, never packed
  GemmTileWidth width = GemmTileWidth::kBBlock;
};

std::string Describe(const Case& c, Isa isa) {
  return absl::StrFormat(
      "%s M=%d N=%d K=%d bias=%d residual=%d act=%s lda+%d ldc+%d ldr+%d copy_a=%d threads=%d "
      "fetch=%d no_scratch=%d all_columns=%d",
      IsaName(isa), c.m, c.n, c.k, c.bias, c.residual, ActivationName(c.act), c.lda_pad, c.ldc_pad,
      c.ldr_pad, c.copy_a, c.threads, c.fetch, c.no_scratch, c.width == GemmTileWidth::kAllColumns);
}

// Tolerance of one output: rounding of a K-term float sum grows like sqrt(K) relative to the sum
// of magnitudes; activations after the sum scale it by at most their slope (≤ 1.2 here) and add
// their own rounding.
double Tolerance(const Case& c, double magnitude, double ref) {
  const double gemm = 2e-6 * std::sqrt(static_cast<double>(c.k)) * magnitude + 1e-6;
  const bool post =
      c.act != Activation::kNone && c.act != Activation::kReLU && c.act != Activation::kReLU6;
  return post ? 1.25 * gemm + 4e-6 * (1.0 + std::abs(ref)) : gemm;
}

// A fetch callback that copies the requested block of a strided A, and checks the request.
struct FetchContext {
  const float* a;
  int64_t lda;
  int64_t m;
  int64_t k;
  mutable int64_t next_k0 = 0;
  mutable bool ok = true;
};

GemmABlock FetchCopy(const void* ctx, int64_t m, int64_t k0, int64_t kc, float* buf,
                     int64_t buf_stride) {
  const auto& f = *static_cast<const FetchContext*>(ctx);
  f.ok = f.ok && m == f.m && k0 == f.next_k0 && kc >= 1 && k0 + kc <= f.k && buf_stride >= kc;
  f.next_k0 = k0 + kc == f.k ? 0 : k0 + kc;
  for (int64_t i = 0; i < m; ++i) {
    std::memcpy(buf + i * buf_stride, f.a + i * f.lda + k0, static_cast<size_t>(kc) * 4);
  }
  return {buf, buf_stride};
}

// Runs one case through packing, tiling and GemmTile, and compares with GemmRef.
void RunCase(Isa isa, const Case& c, uint32_t seed) {
  SCOPED_TRACE(Describe(c, isa));
  std::mt19937 rng(seed);
  const GemmConfig& config = GetGemmConfig(isa);
  const int64_t lda = c.k + c.lda_pad, ldc = c.n + c.ldc_pad, ldr = c.n + c.ldr_pad;
  const std::vector<float> a = Random(static_cast<size_t>(c.m * lda), rng);
  const std::vector<float> w = Random(static_cast<size_t>(c.n * c.k), rng);
  const std::vector<float> bias = Random(static_cast<size_t>(c.n), rng);
  const std::vector<float> residual = Random(static_cast<size_t>(c.m * ldr), rng);
  const float* bias_ptr = c.bias ? bias.data() : nullptr;
  const float* res_ptr = c.residual ? residual.data() : nullptr;

  std::vector<float> expect(static_cast<size_t>(c.m * ldc), kSentinel);
  GemmRef(c.m, c.n, c.k, a.data(), lda, w.data(), c.k, bias_ptr, res_ptr, ldr, c.act, expect.data(),
          ldc);

  const GemmPackedWeights packed =
      GemmPackedWeights::Pack(config, c.n, c.k, w.data(), c.k, bias_ptr);
  const GemmEpilogue epilogue = MakeGemmEpilogue(c.act, isa);
  const GemmTiling tiling = PlanGemmTiling(config, c.m, c.n, c.k, c.threads, c.width);
  ASSERT_GE(tiling.tiles(), 1);
  AlignedPtr<float> scratch =
      MakeAligned<float>(GemmTileScratchFloats(config, tiling.m_tile, c.k) + 1);
  std::vector<float> got(static_cast<size_t>(c.m * ldc), kSentinel);
  for (int64_t t = 0; t < tiling.tiles(); ++t) {
    const int64_t m0 = t / tiling.n_tiles * tiling.m_tile;
    const int64_t n0 = t % tiling.n_tiles * tiling.n_tile;
    ASSERT_LT(m0, c.m);
    ASSERT_LT(n0, c.n);
    GemmTileArgs args;
    args.m = std::min(tiling.m_tile, c.m - m0);
    args.n_begin = n0;
    args.n_end = std::min(n0 + tiling.n_tile, c.n);
    FetchContext fetch{a.data() + m0 * lda, lda, args.m, c.k};
    if (c.fetch) {
      args.fetch = &FetchCopy;
      args.fetch_ctx = &fetch;
    } else {
      args.a = a.data() + m0 * lda;
      args.lda = lda;
      args.copy_a = c.copy_a;
    }
    args.c = got.data() + m0 * ldc;
    args.ldc = ldc;
    args.residual = res_ptr != nullptr ? res_ptr + m0 * ldr : nullptr;
    args.ldr = ldr;
    GemmTile(config, packed, epilogue, args, c.no_scratch ? nullptr : scratch.get());
    ASSERT_TRUE(fetch.ok) << "fetch called with unexpected arguments";
  }

  int failures = 0;
  for (int64_t i = 0; i < c.m && failures < 5; ++i) {
    for (int64_t j = 0; j < ldc && failures < 5; ++j) {
      const float g = got[i * ldc + j], e = expect[i * ldc + j];
      if (j >= c.n) {
        if (g != kSentinel) {
          ADD_FAILURE() << "wrote padding column " << j << " of row " << i;
          ++failures;
        }
        continue;
      }
      double magnitude =
          (c.bias ? std::abs(bias[j]) : 0.0) + (c.residual ? std::abs(residual[i * ldr + j]) : 0.0);
      for (int64_t kk = 0; kk < c.k; ++kk) {
        magnitude += std::abs(double{a[i * lda + kk]} * w[j * c.k + kk]);
      }
      const double tol = Tolerance(c, magnitude, e);
      if (!(std::abs(double{g} - e) <= tol)) {
        ADD_FAILURE() << "C[" << i << "][" << j << "] = " << g << ", reference " << e
                      << " (tolerance " << tol << ")";
        ++failures;
      }
    }
  }
}

class GemmTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (GetParam() > DetectIsa()) GTEST_SKIP() << IsaName(GetParam()) << " not supported here";
  }
};

TEST_P(GemmTest, MatchesReferenceOverEdgeShapes) {
  constexpr Activation kActs[] = {
      Activation::kNone, Activation::kReLU,    Activation::kReLU6,     Activation::kSiLU,
      Activation::kGELU, Activation::kSigmoid, Activation::kHardSwish, Activation::kHardSigmoid};
  uint32_t seed = 1;
  for (int64_t m : {1, 2, 13, 14, 15, 33, 197}) {
    for (int64_t n : {1, 7, 16, 31, 33, 96, 100}) {
      for (int64_t k : {1, 3, 17, 64, 300, 1100}) {
        // Each shape gets one epilogue and layout, cycling through every combination.
        Case c{m, n, k};
        c.bias = seed % 2 == 0;
        c.residual = seed % 3 != 0;
        c.act = kActs[seed % 8];
        c.lda_pad = seed % 4 == 1 ? 5 : 0;
        c.ldc_pad = seed % 5 == 2 ? 3 : 0;
        c.ldr_pad = seed % 7 == 3 ? 17 : 0;
        c.copy_a = seed % 6 == 4;
        c.no_scratch = seed % 6 == 1;  // the strided kernels even where A would be packed
        c.threads = 1 + static_cast<int>(seed % 3);
        RunCase(GetParam(), c, seed++);
        if (HasFailure()) return;
      }
    }
  }
}

// Tiles spanning all columns: GemmTile walks them in several B blocks (with packed, strided,
// copied and fetched A), the activation after the last block and the residual on every block.
TEST_P(GemmTest, AllColumnTilesWalkSeveralBBlocks) {
  uint32_t seed = 500;
  const GemmConfig& config = GetGemmConfig(GetParam());
  for (int64_t n : {1000, 1300}) {
    for (int threads : {1, 2}) {
      for (int variant = 0; variant < 4; ++variant) {
        Case c{variant % 2 == 0 ? 45 : (variant < 2 ? 60 : 197), n, variant < 2 ? 1100 : 300};
        c.width = GemmTileWidth::kAllColumns;
        c.threads = threads;
        c.bias = true;
        c.residual = variant != 1;
        c.act = variant % 2 == 0 ? Activation::kSiLU : Activation::kGELU;
        c.ldc_pad = variant == 2 ? 3 : 0;
        c.copy_a = variant == 1;
        c.fetch = variant == 2;
        c.no_scratch = variant == 3 && n == 1000;
        const GemmTiling t = PlanGemmTiling(config, c.m, c.n, c.k, threads, c.width);
        if (threads == 1) {
          EXPECT_EQ(t.n_tiles, 1) << "one thread: every tile spans all " << n << " columns";
          EXPECT_GT((n + config.nr - 1) / config.nr,
                    GemmBBlockPanels(config, GemmKBlock(config, c.k)))
              << "the columns must not fit one B block, or this test walks only one";
        }
        RunCase(GetParam(), c, seed++);
        if (HasFailure()) return;
      }
    }
  }
}

TEST_P(GemmTest, AppliesEveryEpilogue) {
  uint32_t seed = 100;
  for (Activation act : {Activation::kNone, Activation::kReLU, Activation::kReLU6,
                         Activation::kSiLU, Activation::kGELU, Activation::kSigmoid,
                         Activation::kHardSwish, Activation::kHardSigmoid}) {
    for (bool bias : {false, true}) {
      for (bool residual : {false, true}) {
        Case c{37, 45, 70};
        c.bias = bias;
        c.residual = residual;
        c.act = act;
        c.ldc_pad = 2;
        c.ldr_pad = 9;
        RunCase(GetParam(), c, seed++);
      }
    }
  }
}

TEST_P(GemmTest, TilesForManyThreadsCoverTheProductOnce) {
  for (int threads : {2, 4, 8}) {
    Case c{97, 200, 900};
    c.bias = true;
    c.residual = true;
    c.act = Activation::kSiLU;
    c.threads = threads;
    RunCase(GetParam(), c, 7);
  }
}

// Wide tiles over several K blocks, with and without scratch: the packed-A path (where the kernel
// set has one) and the strided path must both match the reference, tails and flags included.
TEST_P(GemmTest, PackedAndStridedAMatchReference) {
  uint32_t seed = 200;
  for (int64_t m : {1, 14, 15, 29, 183}) {
    for (int64_t n : {65, 130, 353}) {
      for (int64_t k : {7, 385, 1029}) {
        for (bool no_scratch : {false, true}) {
          Case c{m, n, k};
          c.bias = seed % 2 == 0;
          c.residual = seed % 3 != 1;
          c.act = seed % 4 == 0 ? Activation::kSiLU : Activation::kReLU6;
          c.lda_pad = seed % 5 == 0 ? 0 : 3;
          c.ldc_pad = seed % 3 == 0 ? 1 : 0;
          c.no_scratch = no_scratch;
          RunCase(GetParam(), c, seed++);
          if (HasFailure()) return;
        }
      }
    }
  }
}

TEST_P(GemmTest, FetchedABlocksMatchStridedA) {
  for (int64_t k : {5, 384, 1000}) {
    Case c{29, 70, k};
    c.fetch = true;
    c.bias = true;
    c.act = Activation::kReLU6;
    c.threads = 2;
    RunCase(GetParam(), c, 11);
  }
}

TEST_P(GemmTest, LargeValuesAndNaNsPropagate) {
  const GemmConfig& config = GetGemmConfig(GetParam());
  const int64_t m = 3, n = 5, k = 4;
  std::vector<float> a(m * k, 1.f), w(n * k, 1.f), c(m * n, 0.f);
  a[1 * k + 2] = std::nanf("");
  const GemmPackedWeights packed = GemmPackedWeights::Pack(config, n, k, w.data(), k, nullptr);
  GemmTileArgs args;
  args.m = m;
  args.n_end = n;
  args.a = a.data();
  args.lda = k;
  args.c = c.data();
  args.ldc = n;
  GemmTile(config, packed, MakeGemmEpilogue(Activation::kReLU, GetParam()), args, nullptr);
  for (int64_t j = 0; j < n; ++j) {
    EXPECT_EQ(c[j], 4.f);
    EXPECT_TRUE(std::isnan(c[n + j])) << "a NaN in row 1 must survive the ReLU clamp";
  }
}

// IgemmTile against GemmRef: row i, tap t of A is a random source pixel's kc channels (from
// channel a_offset on) or, for about one tap in six, padding (the zero row).
void RunIgemmCase(Isa isa, int64_t m, int64_t n, int64_t ks, int64_t kc, Activation act,
                  int threads, uint32_t seed) {
  SCOPED_TRACE(absl::StrFormat("igemm %s M=%d N=%d taps=%d kc=%d act=%s threads=%d", IsaName(isa),
                               m, n, ks, kc, ActivationName(act), threads));
  std::mt19937 rng(seed);
  const GemmConfig& config = GetGemmConfig(isa);
  const int64_t k = ks * kc, pixels = 23, a_offset = 3, src_stride = kc + 7;
  const std::vector<float> src = Random(static_cast<size_t>(pixels * src_stride), rng);
  const std::vector<float> w = Random(static_cast<size_t>(n * k), rng);
  const std::vector<float> bias = Random(static_cast<size_t>(n), rng);
  const std::vector<float> residual = Random(static_cast<size_t>(m * n), rng);
  const std::vector<float> zero(static_cast<size_t>(kc), 0.f);

  // Which pixel each (row, tap) reads, -1 for padding, and the equivalent dense A.
  std::vector<int64_t> pixel(static_cast<size_t>(m * ks));
  std::vector<float> a(static_cast<size_t>(m * k), 0.f);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < ks; ++t) {
      const int64_t p = rng() % 6 == 0 ? -1 : static_cast<int64_t>(rng() % pixels);
      pixel[i * ks + t] = p;
      for (int64_t c = 0; c < kc && p >= 0; ++c) {
        a[i * k + t * kc + c] = src[p * src_stride + a_offset + c];
      }
    }
  }
  std::vector<float> expect(static_cast<size_t>(m * n));
  GemmRef(m, n, k, a.data(), k, w.data(), k, bias.data(), residual.data(), n, act, expect.data(),
          n);

  const GemmPackedWeights packed = GemmPackedWeights::Pack(config, n, k, w.data(), k, bias.data());
  const GemmEpilogue epilogue = MakeGemmEpilogue(act, isa);
  const GemmTiling tiling = PlanGemmTiling(config, m, n, k, threads);
  std::vector<float> got(static_cast<size_t>(m * n), kSentinel);
  for (int64_t tile = 0; tile < tiling.tiles(); ++tile) {
    const int64_t m0 = tile / tiling.n_tiles * tiling.m_tile;
    const int64_t n0 = tile % tiling.n_tiles * tiling.n_tile;
    const int64_t rows = std::min(tiling.m_tile, m - m0);
    const int64_t blocks = (rows + config.mr - 1) / config.mr;
    std::vector<const float*> indirection(static_cast<size_t>(blocks * ks * config.mr), nullptr);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t t = 0; t < ks; ++t) {
        const int64_t p = pixel[(m0 + i) * ks + t];
        indirection[((i / config.mr) * ks + t) * config.mr + i % config.mr] =
            p >= 0 ? src.data() + p * src_stride : zero.data();
      }
    }
    IgemmTileArgs args;
    args.m = rows;
    args.n_begin = n0;
    args.n_end = std::min(n0 + tiling.n_tile, n);
    args.indirection = indirection.data();
    args.ks = ks;
    args.kc = kc;
    args.a_offset = a_offset;
    args.zero = zero.data();
    args.c = got.data() + m0 * n;
    args.ldc = n;
    args.residual = residual.data() + m0 * n;
    args.ldr = n;
    IgemmTile(config, packed, epilogue, args);
  }
  Case c{m, n, k};
  c.act = act;
  int failures = 0;
  for (int64_t i = 0; i < m && failures < 5; ++i) {
    for (int64_t j = 0; j < n && failures < 5; ++j) {
      double magnitude = std::abs(bias[j]) + std::abs(residual[i * n + j]);
      for (int64_t kk = 0; kk < k; ++kk)
        magnitude += std::abs(double{a[i * k + kk]} * w[j * k + kk]);
      const double tol = Tolerance(c, magnitude, expect[i * n + j]);
      const float g = got[i * n + j];
      if (!(std::abs(double{g} - expect[i * n + j]) <= tol)) {
        ADD_FAILURE() << "C[" << i << "][" << j << "] = " << g << ", reference "
                      << expect[i * n + j] << " (tolerance " << tol << ")";
        ++failures;
      }
    }
  }
}

TEST_P(GemmTest, IndirectGemmMatchesReference) {
  struct Taps {
    int64_t ks, kc;
  };
  uint32_t seed = 300;
  for (int64_t m : {1, 13, 14, 29}) {
    for (int64_t n : {8, 16, 33, 70}) {
      // One tap; 3×3 over 8 and 16 channels; 2×2 over 3; 5×5 over 24 and 3 taps of 200 (both
      // cross the K block).
      for (Taps t : {Taps{1, 5}, Taps{9, 8}, Taps{9, 16}, Taps{4, 3}, Taps{25, 24}, Taps{3, 200}}) {
        const Activation act = seed % 3 == 0   ? Activation::kReLU6
                               : seed % 3 == 1 ? Activation::kGELU
                                               : Activation::kNone;
        RunIgemmCase(GetParam(), m, n, t.ks, t.kc, act, 1 + static_cast<int>(seed % 3), seed);
        ++seed;
        if (HasFailure()) return;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, GemmTest,
                         ::testing::Values(Isa::kPortable, Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(IsaName(info.param));
                         });

TEST(GemmConfigTest, EveryKernelSlotUpToMrAndNrIsFilled) {
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    const GemmConfig& config = GetGemmConfig(isa);
    EXPECT_EQ(config.isa, std::min(isa, DetectIsa())) << "unsupported ISAs fall back";
    EXPECT_FALSE(config.name.empty());
    EXPECT_FALSE(config.igemm_name.empty());
    ASSERT_GE(config.mr, 1);
    ASSERT_LE(config.mr, kGemmMaxMr);
    ASSERT_EQ(config.nr % config.lanes, 0);
    ASSERT_LE(config.nr / config.lanes, kGemmMaxNv);
    for (int v = 0; v < config.nr / config.lanes; ++v) {
      for (int m = 0; m < config.mr; ++m) {
        EXPECT_NE(config.ukernel[v][m], nullptr) << config.name << " v=" << v << " m=" << m;
        EXPECT_NE(config.igemm[v][m], nullptr) << config.igemm_name << " v=" << v << " m=" << m;
        EXPECT_EQ(config.packed_ukernel[v][m] != nullptr, config.packs_a())
            << config.name << " packed v=" << v << " m=" << m;
      }
    }
  }
}

// Every kernel set that packs A: micro-panels of mr rows, k-major, for odd row counts, K tails
// and padded strides.
TEST(GemmPackATest, WritesMrInterleavedMicroPanels) {
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    const GemmConfig& config = GetGemmConfig(isa);
    if (!config.packs_a()) continue;
    const int64_t mr = config.mr;
    std::mt19937 rng(5);
    for (int64_t m : {int64_t{1}, mr - 1, mr, mr + 1, 3 * mr + 2}) {
      for (int64_t kc : {1, 5, 16, 17, 344}) {
        SCOPED_TRACE(absl::StrFormat("%s m=%d kc=%d", config.name, m, kc));
        const int64_t stride = kc + 3;
        const std::vector<float> a = Random(static_cast<size_t>(m * stride), rng);
        const int64_t blocks = (m + mr - 1) / mr;
        AlignedPtr<float> packed = MakeAligned<float>(static_cast<size_t>(blocks * mr * kc));
        config.pack_a(m, kc, a.data(), stride, packed.get());
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t k = 0; k < kc; ++k) {
            const float got = packed.get()[(i / mr) * mr * kc + k * mr + i % mr];
            ASSERT_EQ(got, a[i * stride + k]) << "row " << i << " k " << k;
          }
        }
      }
    }
  }
}

TEST(GemmPackedWeightsTest, PanelsAreKRowsOfNrZeroPaddedPastN) {
  const GemmConfig& config = GetGemmConfig(Isa::kPortable);
  const int64_t n = config.nr + 3, k = 5;
  std::vector<float> w(n * k), bias(n);
  for (int64_t i = 0; i < n * k; ++i) w[i] = static_cast<float>(i + 1);
  for (int64_t i = 0; i < n; ++i) bias[i] = static_cast<float>(-i - 1);
  const GemmPackedWeights p = GemmPackedWeights::Pack(config, n, k, w.data(), k, bias.data());
  ASSERT_EQ(p.num_panels(), 2);
  for (int64_t col = 0; col < 2 * config.nr; ++col) {
    for (int64_t kk = 0; kk < k; ++kk) {
      const float v = p.panel(col / config.nr)[kk * config.nr + col % config.nr];
      EXPECT_EQ(v, col < n ? w[col * k + kk] : 0.f) << "col " << col << " k " << kk;
    }
    EXPECT_EQ(p.bias()[col], col < n ? bias[col] : 0.f);
  }
}

TEST(GemmTilingTest, SplitsSmallProductsForThreadsAndKeepsLargeTilesAlone) {
  const GemmConfig& config = GetGemmConfig(DetectIsa());
  const GemmTiling one = PlanGemmTiling(config, 3136, 384, 96, 1);
  EXPECT_EQ(one.n_tiles, 1);
  EXPECT_GE(one.m_tile, 8 * config.mr);
  const GemmTiling two = PlanGemmTiling(config, 3136, 384, 96, 2);
  EXPECT_GE(two.tiles(), 8);
  const GemmTiling linear = PlanGemmTiling(config, 1, 1000, 768, 2);
  EXPECT_EQ(linear.m_tile, 1);
  EXPECT_GE(linear.tiles(), 8);
  EXPECT_EQ(linear.n_tile % config.nr, 0);
  const GemmTiling wide = PlanGemmTiling(config, 3136, 3072, 768, 1);
  EXPECT_GT(wide.n_tiles, 1) << "a 768×3072 B block does not fit L2";
}

TEST(GemmKBlockTest, BalancesBlocksAndCoversK) {
  const GemmConfig& config = GetGemmConfig(DetectIsa());
  EXPECT_EQ(GemmKBlock(config, 1), 1);
  EXPECT_EQ(GemmKBlock(config, config.kc), config.kc);
  const int64_t kc = GemmKBlock(config, config.kc + 1);
  EXPECT_LE(kc, config.kc);
  EXPECT_GE(2 * kc, config.kc + 1);
  EXPECT_GE(GemmABufferStride(kc), kc);
}

}  // namespace
}  // namespace visionserve::engine::kernels
