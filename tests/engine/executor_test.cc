#include "engine/executor.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "engine/reference.h"
#include "gtest/gtest.h"
#include "tests/engine/alloc_counter.h"
#include "tests/engine/test_util.h"

namespace visionserve::engine {
namespace {

using testing::RandomizeParams;
using testing::RandomTensor;
using testing::RelMaxDiff;

Conv2DAttrs Conv(int64_t out, int k, int stride = 1, int64_t groups = 1) {
  Conv2DAttrs a;
  a.out_channels = out;
  a.kernel_h = a.kernel_w = k;
  a.stride_h = a.stride_w = stride;
  a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = k / 2;
  a.groups = groups;
  return a;
}

// A little network touching every op family: stem conv, BN, activations, grouped and
// depthwise convs, squeeze-excite, residuals, LayerNorm + layer scale, max pool, GAP, linear.
Graph MixedNet() {
  Graph g;
  ValueId x = g.Input("input", {19, 17, 3});
  ValueId s = g.Act(g.BatchNorm(g.Conv2D(x, Conv(16, 3, 2), false, "stem"), "stem_bn"),
                    Activation::kHardSwish);
  ValueId p = g.MaxPool(s, MaxPoolAttrs{});
  // RegNet-style: 1x1 -> grouped 3x3 -> SE -> 1x1 + residual, ReLU after add.
  ValueId a =
      g.Act(g.BatchNorm(g.Conv2D(p, Conv(24, 1), false, "b1.a"), "b1.a_bn"), Activation::kReLU);
  ValueId b = g.Act(g.BatchNorm(g.Conv2D(a, Conv(24, 3, 1, 3), false, "b1.b"), "b1.b_bn"),
                    Activation::kReLU);
  b = g.SqueezeExcite(b, SqueezeExciteAttrs{6, Activation::kReLU, Activation::kSigmoid}, "b1.se");
  ValueId c = g.BatchNorm(g.Conv2D(b, Conv(16, 1), false, "b1.c"), "b1.c_bn");
  ValueId r = g.Add(c, p, Activation::kReLU);
  // MBConv-style: expand, depthwise 5x5 stride 2 with SiLU, SE, project.
  ValueId e =
      g.Act(g.BatchNorm(g.Conv2D(r, Conv(40, 1), false, "b2.e"), "b2.e_bn"), Activation::kSiLU);
  ValueId d = g.Act(g.BatchNorm(g.Conv2D(e, Conv(40, 5, 2, 40), false, "b2.d"), "b2.d_bn"),
                    Activation::kSiLU);
  d = g.SqueezeExcite(d, SqueezeExciteAttrs{10, Activation::kSiLU, Activation::kSigmoid}, "b2.se");
  ValueId m = g.BatchNorm(g.Conv2D(d, Conv(20, 1), false, "b2.p"), "b2.p_bn");
  // ConvNeXt-style: dw 7x7 -> LN -> 1x1 4C + GELU -> 1x1 C -> layer scale -> + m.
  ValueId n = g.LayerNorm(g.Conv2D(m, Conv(20, 7, 1, 20), true, "b3.dw"), "b3.ln");
  ValueId h = g.Act(g.Conv2D(n, Conv(80, 1), true, "b3.pw1"), Activation::kGELU);
  ValueId o = g.ChannelScale(g.Conv2D(h, Conv(20, 1), true, "b3.pw2"), "b3.gamma");
  ValueId y = g.Add(o, m);
  ValueId z = g.LayerNorm(g.GlobalAvgPool(y), "head.ln");
  g.MarkOutput(g.Linear(z, 11, true, "fc"));
  RandomizeParams(g, 42);
  return g;
}

std::vector<Isa> AvailableIsas() {
  std::vector<Isa> out;
  for (Isa i : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (i <= DetectIsa()) out.push_back(i);
  }
  return out;
}

TEST(CompiledModelTest, MatchesReferenceOnEveryIsaAndBatch) {
  const Graph g = MixedNet();
  for (Isa isa : AvailableIsas()) {
    CompileOptions opts;
    opts.isa = isa;
    opts.num_threads = 2;
    opts.batch_sizes = {1, 3};
    auto m = CompiledModel::Create(g, opts);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_GT((*m)->pass_stats().batchnorms_folded, 0);
    for (int64_t batch : {1, 3, 5}) {
      Tensor x = RandomTensor(batch, g.value(g.inputs()[0]).dims, 100 + batch);
      auto ref = RunReference(g, {&x, 1});
      ASSERT_TRUE(ref.ok()) << ref.status();
      Tensor y(batch, (*m)->output_dims());
      ASSERT_TRUE((*m)->Run(batch, x.span(), y.span()).ok());
      EXPECT_LT(RelMaxDiff(y, (*ref)[0]), 2e-4) << IsaName(isa) << " batch " << batch;
    }
  }
}

// YOLOv8's C2f wiring: a conv, its output split in two channel halves, one half through a
// residual bottleneck, everything concatenated and fused by a 1×1 conv.
TEST(CompiledModelTest, SplitBranchesAndConcatMatchReference) {
  Graph g;
  const ValueId x = g.Input("x", Dims{12, 10, 8});
  Conv2DAttrs c1;
  c1.out_channels = 16;
  const ValueId a = g.Act(g.Conv2D(x, c1, true, "cv1"), Activation::kSiLU);
  const ValueId y0 = g.Slice(a, 0, 8), y1 = g.Slice(a, 8, 16);
  Conv2DAttrs c3;
  c3.out_channels = 8;
  c3.kernel_h = c3.kernel_w = 3;
  c3.pad_top = c3.pad_left = c3.pad_bottom = c3.pad_right = 1;
  const ValueId m = g.Add(y1, g.Act(g.Conv2D(y1, c3, true, "m.cv1"), Activation::kSiLU));
  Conv2DAttrs c2;
  c2.out_channels = 12;
  g.MarkOutput(g.Conv2D(g.Concat(std::vector<ValueId>{y0, y1, m}), c2, true, "cv2"));
  RandomizeParams(g, 5);
  CompileOptions opts;
  opts.num_threads = 2;
  auto compiled = CompiledModel::Create(g, opts);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  for (int64_t batch : {1, 3}) {
    Tensor in = RandomTensor(batch, g.value(g.inputs()[0]).dims, 7 + batch);
    auto ref = RunReference(g, {&in, 1});
    ASSERT_TRUE(ref.ok()) << ref.status();
    Tensor y(batch, (*compiled)->output_dims());
    ASSERT_TRUE((*compiled)->Run(batch, in.span(), y.span()).ok());
    EXPECT_LT(RelMaxDiff(y, (*ref)[0]), 2e-4) << "batch " << batch;
  }
}

TEST(CompiledModelTest, ChunkedBatchesMatchReference) {
  const Graph g = MixedNet();
  CompileOptions opts;
  opts.max_chunk = 2;
  auto m = CompiledModel::Create(g, opts);
  ASSERT_TRUE(m.ok()) << m.status();
  Tensor x = RandomTensor(5, g.value(g.inputs()[0]).dims, 9);
  auto ref = RunReference(g, {&x, 1});
  ASSERT_TRUE(ref.ok()) << ref.status();
  Tensor y(5, (*m)->output_dims());
  ASSERT_TRUE((*m)->Run(5, x.span(), y.span()).ok());  // chunks of 2, 2, 1
  EXPECT_LT(RelMaxDiff(y, (*ref)[0]), 2e-4);
}

// Runs `g` on the images of a batch given as separate buffers (each its own allocation, image
// i of the batch in buffer batch − 1 − i) and on the same images in one buffer: the results must
// be identical, on every ISA, for batches that fill, split and undershoot the chunks.
void ExpectImagesRunLikeOneBuffer(const Graph& g, bool by_image) {
  for (Isa isa : AvailableIsas()) {
    CompileOptions opts;
    opts.isa = isa;
    opts.num_threads = 2;
    opts.max_chunk = 2;
    opts.batch_sizes = {1, 2};
    auto m = CompiledModel::Create(g, opts);
    ASSERT_TRUE(m.ok()) << m.status();
    auto plan = (*m)->GetPlan(2);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ((*plan)->input_by_image(), by_image) << (*plan)->Describe((*m)->graph());
    for (int64_t batch : {1, 2, 5}) {
      const Tensor x = RandomTensor(batch, (*m)->input_dims(), 60 + batch);
      std::vector<Tensor> separate;
      for (int64_t i = 0; i < batch; ++i) separate.emplace_back(1, (*m)->input_dims());
      std::vector<const float*> images;
      for (int64_t i = 0; i < batch; ++i) {
        Tensor& t = separate[batch - 1 - i];
        std::copy(x.image(i), x.image(i) + (*m)->input_dims().elements(), t.data());
        images.push_back(t.data());
      }
      Tensor y(batch, (*m)->output_dims()), y_images(batch, (*m)->output_dims());
      ASSERT_TRUE((*m)->Run(batch, x.span(), y.span()).ok());
      ASSERT_TRUE((*m)->Run(images, y_images.span()).ok());
      EXPECT_TRUE(std::equal(y.span().begin(), y.span().end(), y_images.span().begin()))
          << IsaName(isa) << " batch " << batch << " max diff " << RelMaxDiff(y, y_images);
    }
  }
}

TEST(CompiledModelTest, ImagesInPlaceThroughAnIndirectStemRunLikeOneBuffer) {
  ExpectImagesRunLikeOneBuffer(MixedNet(), /*by_image=*/true);  // 3×3/s2 stem: indirect GEMM
}

TEST(CompiledModelTest, ImagesInPlaceThroughAnIm2colStemRunLikeOneBuffer) {
  // A dense 1×1 stride-2 conv copies rows (im2col); odd sizes leave a partial last row.
  Graph g;
  const ValueId x = g.Input("x", Dims{9, 7, 5});
  Conv2DAttrs a;
  a.out_channels = 12;
  a.stride_h = a.stride_w = 2;
  g.MarkOutput(g.Act(g.Conv2D(x, a, true, "stem"), Activation::kReLU));
  RandomizeParams(g, 3);
  ExpectImagesRunLikeOneBuffer(g, /*by_image=*/true);
}

TEST(CompiledModelTest, ImagesAreGatheredWhenAnOpReadsTheInputAsOneBuffer) {
  // A stride-1 1×1 conv is a plain GEMM over all pixels of the batch: it needs one buffer.
  Graph g;
  const ValueId x = g.Input("x", Dims{5, 3, 8});
  Conv2DAttrs a;
  a.out_channels = 8;
  g.MarkOutput(g.Conv2D(x, a, true, "pw"));
  RandomizeParams(g, 4);
  ExpectImagesRunLikeOneBuffer(g, /*by_image=*/false);
}

TEST(CompiledModelTest, ImagesAreGatheredWhenTheInputIsAlsoAResidual) {
  // conv(x) + x: the add fuses into the conv as a residual read from the whole input.
  Graph g;
  const ValueId x = g.Input("x", Dims{6, 5, 4});
  g.MarkOutput(g.Add(g.Conv2D(x, Conv(4, 3), true, "conv"), x));
  RandomizeParams(g, 6);
  ExpectImagesRunLikeOneBuffer(g, /*by_image=*/false);
}

TEST(CompiledModelTest, RunOnImagesRejectsBadBatchesAndNullImages) {
  CompileOptions opts;
  opts.max_batch_size = 2;
  auto m = CompiledModel::Create(MixedNet(), opts);
  ASSERT_TRUE(m.ok()) << m.status();
  Tensor x = RandomTensor(1, (*m)->input_dims(), 1);
  Tensor y(3, (*m)->output_dims());
  const float* one[1] = {x.data()};
  const float* three[3] = {x.data(), x.data(), x.data()};
  const float* with_null[2] = {x.data(), nullptr};
  EXPECT_EQ((*m)->Run(std::span<const float* const>(), y.span()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*m)->Run(three, y.span()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*m)->Run(with_null, y.span()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*m)->Run(one, y.span().first(0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*m)->Run(one, y.span()).ok());
}

TEST(CompiledModelTest, ArenaSharesMemoryBetweenDeadIntermediates) {
  auto m = CompiledModel::Create(MixedNet(), CompileOptions{});
  ASSERT_TRUE(m.ok()) << m.status();
  auto plan = (*m)->GetPlan(4);
  ASSERT_TRUE(plan.ok());
  EXPECT_GT((*plan)->arena_bytes(), 0u);
  EXPECT_LT((*plan)->arena_bytes() * 2, (*plan)->intermediate_bytes());
  EXPECT_FALSE((*plan)->Describe((*m)->graph()).empty());
}

TEST(CompiledModelTest, ConcurrentRunsGiveTheSameResultsAsSerialRuns) {
  CompileOptions opts;
  opts.num_threads = 2;
  opts.batch_sizes = {2};
  auto m = CompiledModel::Create(MixedNet(), opts);
  ASSERT_TRUE(m.ok()) << m.status();
  const Dims in = (*m)->input_dims();
  std::vector<Tensor> inputs, expected;
  for (int i = 0; i < 4; ++i) {
    inputs.push_back(RandomTensor(2, in, 7 + i));
    expected.emplace_back(2, (*m)->output_dims());
    ASSERT_TRUE((*m)->Run(2, inputs[i].span(), expected[i].span()).ok());
  }
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Tensor y(2, (*m)->output_dims());
      for (int rep = 0; rep < 20; ++rep) {
        const int i = (t + rep) % 4;
        if (!(*m)->Run(2, inputs[i].span(), y.span()).ok() || RelMaxDiff(y, expected[i]) > 0) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(CompiledModelTest, ModelsSharingOnePoolRunConcurrently) {
  auto pool = std::make_shared<ThreadPool>(2);
  CompileOptions opts;
  opts.batch_sizes = {2};
  opts.pool = pool;
  auto a = CompiledModel::Create(MixedNet(), opts);
  auto b = CompiledModel::Create(MixedNet(), opts);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->num_threads(), 2);
  const Tensor x = RandomTensor(2, (*a)->input_dims(), 3);
  Tensor want(2, (*a)->output_dims());
  ASSERT_TRUE((*a)->Run(2, x.span(), want.span()).ok());
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const CompiledModel& m = t % 2 ? **a : **b;
      Tensor y(2, m.output_dims());
      for (int rep = 0; rep < 10; ++rep) {
        if (!m.Run(2, x.span(), y.span()).ok() || RelMaxDiff(y, want) > 0) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(CompiledModelTest, WarmRunAllocatesNothing) {
  CompileOptions opts;
  opts.num_threads = 2;
  opts.batch_sizes = {2};
  auto m = CompiledModel::Create(MixedNet(), opts);
  ASSERT_TRUE(m.ok()) << m.status();
  Tensor x = RandomTensor(2, (*m)->input_dims(), 1);
  Tensor y(2, (*m)->output_dims());
  ASSERT_TRUE((*m)->Run(2, x.span(), y.span()).ok());
  ASSERT_TRUE((*m)->Run(2, x.span(), y.span()).ok());
  const float* images[2] = {x.image(1), x.image(0)};
  ASSERT_TRUE((*m)->Run(images, y.span()).ok());
  const int64_t before = HeapAllocations();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE((*m)->Run(2, x.span(), y.span()).ok());
    ASSERT_TRUE((*m)->Run(images, y.span()).ok());
  }
  EXPECT_EQ(HeapAllocations() - before, 0);
}

#if defined(__x86_64__)
TEST(CompiledModelTest, RunLeavesTheCallersFloatingPointModeAlone) {
  CompileOptions opts;
  opts.num_threads = 2;
  opts.batch_sizes = {2};
  auto m = CompiledModel::Create(MixedNet(), opts);
  ASSERT_TRUE(m.ok()) << m.status();
  Tensor x = RandomTensor(2, (*m)->input_dims(), 1);
  Tensor y(2, (*m)->output_dims());
  const unsigned before = _mm_getcsr();
  _mm_setcsr(before & ~0x8040u);  // the caller runs without FTZ/DAZ
  const absl::Status s = (*m)->Run(2, x.span(), y.span());
  const unsigned after = _mm_getcsr();
  _mm_setcsr(before);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(after & 0x8040u, 0u);
}
#endif

TEST(CompiledModelTest, RejectsBadBatchAndBufferSizes) {
  CompileOptions opts;
  opts.max_batch_size = 4;
  auto m = CompiledModel::Create(MixedNet(), opts);
  ASSERT_TRUE(m.ok()) << m.status();
  Tensor x = RandomTensor(1, (*m)->input_dims(), 1);
  Tensor y(1, (*m)->output_dims());
  EXPECT_EQ((*m)->Run(0, x.span(), y.span()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*m)->Run(5, x.span(), y.span()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*m)->Run(2, x.span(), y.span()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*m)->Run(1, x.span(), y.span()).ok());
}

TEST(CompiledModelTest, RejectsGraphsWithSeveralInputs) {
  Graph g;
  ValueId a = g.Input("a", {2, 2, 4});
  ValueId b = g.Input("b", {2, 2, 4});
  g.MarkOutput(g.Add(a, b));
  auto m = CompiledModel::Create(g, CompileOptions{});
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace visionserve::engine
