// The GEMM-based ops (pointwise conv, im2col conv, linear) against the reference interpreter,
// one node per graph, every tile of every stage run serially.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/cpu_features.h"
#include "engine/graph.h"
#include "engine/kernels/gemm.h"
#include "engine/ops/op.h"
#include "engine/ops/registry.h"
#include "engine/reference.h"
#include "engine/tensor.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

namespace visionserve::engine {
namespace {

using testing::RandomizeParams;
using testing::RandomTensor;

constexpr Isa kIsas[] = {Isa::kPortable, Isa::kAvx2, Isa::kAvx512};

// A one-node graph: x [, residual] -> node -> y.
struct OneNode {
  Graph graph;
  int32_t node = 0;
  bool residual = false;
};

OneNode ConvGraph(Dims in, const Conv2DAttrs& attrs, bool bias, uint32_t seed) {
  OneNode g;
  const ValueId x = g.graph.Input("x", in);
  Conv2DAttrs a = attrs;
  a.fused_residual = false;
  const ValueId y = g.graph.Conv2D(x, a, bias, "conv");
  g.node = static_cast<int32_t>(g.graph.nodes().size()) - 1;
  if (attrs.fused_residual) {
    const ValueId r = g.graph.Input("residual", g.graph.value(y).dims);
    Node& n = g.graph.mutable_node(g.node);
    n.inputs.push_back(r);
    n.attr<Conv2DAttrs>().fused_residual = true;
    g.residual = true;
  }
  g.graph.MarkOutput(y);
  RandomizeParams(g.graph, seed);
  return g;
}

OneNode LinearGraph(int64_t k, int64_t n_out, bool bias, Activation act, bool residual,
                    uint32_t seed) {
  OneNode g;
  const ValueId x = g.graph.Input("x", Dims{1, 1, k});
  const ValueId y = g.graph.Linear(x, n_out, bias, "fc");
  g.node = static_cast<int32_t>(g.graph.nodes().size()) - 1;
  Node& n = g.graph.mutable_node(g.node);
  n.attr<LinearAttrs>().act = act;
  if (residual) {
    n.inputs.push_back(g.graph.Input("residual", Dims{1, 1, n_out}));
    n.attr<LinearAttrs>().fused_residual = true;
    g.residual = true;
  }
  g.graph.MarkOutput(y);
  RandomizeParams(g.graph, seed);
  return g;
}

OpPlanInput PlanInput(const OneNode& g, int64_t batch, Isa isa, int threads, WeightCache* cache) {
  OpPlanInput in;
  in.graph = &g.graph;
  in.node_index = g.node;
  in.batch = batch;
  const Node& node = g.graph.node(g.node);
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    in.input_dims.push_back(g.graph.value(node.inputs[i]).dims);
    in.inputs.push_back(BufferRef{BufferRef::Kind::kInput, static_cast<int32_t>(i), 0});
  }
  in.output_dims = g.graph.value(node.output).dims;
  in.output = BufferRef{BufferRef::Kind::kOutput, 0, 0};
  in.isa = isa;
  in.num_threads = threads;
  in.weights = cache;
  return in;
}

// Runs every tile of every stage in grain-sized chunks, like the executor but serially, with
// guard bytes after the scratch to catch overruns.
void RunAllTiles(const Op& op, const RunContext& ctx) {
  constexpr size_t kGuard = 256;
  const size_t bytes = op.ScratchBytes();
  AlignedPtr<std::byte> scratch = MakeAligned<std::byte>(bytes + kGuard);
  std::memset(scratch.get() + bytes, 0x5A, kGuard);
  for (int stage = 0; stage < op.NumStages(); ++stage) {
    const int64_t tiles = op.NumTiles(stage);
    const int64_t grain = op.Grain(stage);
    ASSERT_GE(grain, 1);
    for (int64_t b = 0; b < tiles; b += grain) {
      op.RunTiles(stage, b, std::min(tiles, b + grain), ctx, bytes > 0 ? scratch.get() : nullptr);
    }
  }
  for (size_t i = 0; i < kGuard; ++i) {
    ASSERT_EQ(scratch[bytes + i], std::byte{0x5A}) << "scratch overrun at byte " << bytes + i;
  }
}

// Plans the node with `factory`, runs it and compares with RunReference.
void CheckOp(OpFactory factory, const OneNode& g, int64_t batch, Isa isa, int threads,
             const std::string& what) {
  SCOPED_TRACE(
      absl::StrFormat("%s isa=%s batch=%d threads=%d", what, IsaName(isa), batch, threads));
  WeightCache cache;
  auto op = factory(PlanInput(g, batch, isa, threads, &cache));
  ASSERT_TRUE(op.ok()) << op.status();
  SCOPED_TRACE((*op)->Describe());

  std::vector<Tensor> inputs;
  for (size_t i = 0; i < g.graph.inputs().size(); ++i) {
    inputs.push_back(RandomTensor(batch, g.graph.value(g.graph.inputs()[i]).dims,
                                  static_cast<uint32_t>(100 + i)));
  }
  auto expect = RunReference(g.graph, inputs);
  ASSERT_TRUE(expect.ok()) << expect.status();
  const Tensor& want = (*expect)[0];
  Tensor got(batch, want.dims());
  for (float& v : got.span()) v = std::nanf("");

  std::vector<const float*> in_ptrs;
  for (const Tensor& t : inputs) in_ptrs.push_back(t.data());
  float* out_ptrs[] = {got.data()};
  RunContext ctx;
  ctx.inputs = in_ptrs.data();
  ctx.outputs = out_ptrs;
  RunAllTiles(**op, ctx);

  double mag = 1e-3;
  for (float v : want.span()) mag = std::max(mag, double{std::abs(v)});
  int bad = 0;
  for (int64_t i = 0; i < want.size() && bad < 5; ++i) {
    const double d = std::abs(double{got.data()[i]} - want.data()[i]);
    if (!(d <= 1e-5 * mag + 1e-5 * std::abs(want.data()[i]))) {
      ADD_FAILURE() << "element " << i << " (pixel " << i / want.dims().c << ", channel "
                    << i % want.dims().c << "): got " << got.data()[i] << ", want "
                    << want.data()[i];
      ++bad;
    }
  }
}

struct ConvCase {
  std::string name;
  Dims in;
  Conv2DAttrs attrs;
  bool bias = true;
  int64_t batch = 1;
};

Conv2DAttrs Conv(int64_t out, int k, int stride, int pad, int64_t groups = 1, int dilation = 1,
                 Activation act = Activation::kNone, bool residual = false) {
  Conv2DAttrs a;
  a.out_channels = out;
  a.kernel_h = a.kernel_w = k;
  a.stride_h = a.stride_w = stride;
  a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = pad;
  a.groups = groups;
  a.dilation_h = a.dilation_w = dilation;
  a.act = act;
  a.fused_residual = residual;
  return a;
}

void CheckConvCases(OpFactory factory, const std::vector<ConvCase>& cases) {
  uint32_t seed = 1;
  for (const ConvCase& c : cases) {
    const OneNode g = ConvGraph(c.in, c.attrs, c.bias, seed++);
    for (Isa isa : kIsas) {
      if (isa > DetectIsa()) continue;
      for (int threads : {1, 3}) {
        CheckOp(factory, g, c.batch, isa, threads, c.name);
        if (::testing::Test::HasFailure()) return;
      }
    }
  }
}

TEST(GemmConvOpTest, PointwiseMatchesReference) {
  CheckConvCases(
      &CreatePointwiseConvOp,
      {
          {"1x1 odd spatial relu", {7, 5, 24}, Conv(40, 1, 1, 0, 1, 1, Activation::kReLU), true, 2},
          {"1x1 residual silu", {6, 3, 33}, Conv(17, 1, 1, 0, 1, 1, Activation::kSiLU, true)},
          {"1x1 no bias relu6", {4, 4, 96}, Conv(384, 1, 1, 0, 1, 1, Activation::kReLU6), false},
          {"1x1 K=1024 gelu residual",
           {3, 3, 1024},
           Conv(130, 1, 1, 0, 1, 1, Activation::kGELU, true)},
          {"1x1 single pixel", {1, 1, 64}, Conv(10, 1, 1, 0), true, 3},
      });
}

TEST(GemmConvOpTest, DenseGeneralConvsMatchReference) {
  Conv2DAttrs asym = Conv(12, 2, 2, 0);
  asym.pad_bottom = 1;
  asym.pad_right = 1;
  Conv2DAttrs rect = Conv(8, 3, 1, 1, 1, 1, Activation::kHardSwish, true);
  rect.kernel_w = 5;
  rect.pad_left = 2;
  rect.pad_right = 2;
  rect.stride_w = 2;
  CheckConvCases(
      &CreateGeneralConvOp,
      {
          {"3x3 p1 odd", {9, 7, 16}, Conv(20, 3, 1, 1, 1, 1, Activation::kReLU), true, 2},
          {"stem 7x7 s2 p3 cin3", {23, 19, 3}, Conv(16, 7, 2, 3, 1, 1, Activation::kReLU)},
          {"stem 3x3 s2 p1 cin3", {15, 15, 3}, Conv(8, 3, 2, 1, 1, 1, Activation::kSiLU), false},
          {"1x1 s2 downsample", {9, 9, 32}, Conv(48, 1, 2, 0), false, 2},
          {"4x4 s4 stem", {16, 12, 3}, Conv(24, 4, 4, 0)},
          {"2x2 s2 asymmetric pad", {7, 7, 10}, asym},
          {"1x1 spatial 3x3 p1", {1, 1, 64}, Conv(40, 3, 1, 1), true, 2},
          {"dilation 2", {10, 9, 8}, Conv(12, 3, 1, 2, 1, 2, Activation::kGELU)},
          {"3x5 s1x2 residual hardswish", {8, 11, 6}, rect},
          {"deep K crosses kc", {6, 5, 96}, Conv(33, 3, 1, 1, 1, 1, Activation::kNone, true)},
      });
}

TEST(GemmConvOpTest, GroupedConvsMatchReference) {
  CheckConvCases(
      &CreateGeneralConvOp,
      {
          {"gw2", {9, 9, 16}, Conv(16, 3, 1, 1, 8, 1, Activation::kReLU)},
          {"gw8 s2 odd", {11, 11, 48}, Conv(48, 3, 2, 1, 6, 1, Activation::kReLU), true, 2},
          {"gw8 many groups", {7, 7, 104}, Conv(104, 3, 1, 1, 13, 1, Activation::kSiLU, true)},
          {"gw24", {8, 6, 48}, Conv(48, 3, 1, 1, 2, 1, Activation::kReLU)},
          {"cin_g 4 cout_g 8", {5, 7, 16}, Conv(32, 3, 1, 1, 4, 1, Activation::kGELU), false},
          {"gw8 residual sigmoid", {6, 6, 32}, Conv(32, 3, 1, 1, 4, 1, Activation::kSigmoid, true)},
          {"gw16 dilation 2", {9, 8, 32}, Conv(32, 3, 1, 2, 2, 2)},
          {"1x1 grouped", {5, 5, 24}, Conv(24, 1, 1, 0, 3)},
      });
}

TEST(GemmConvOpTest, LinearMatchesReference) {
  uint32_t seed = 50;
  struct LinearCase {
    int64_t k, n, batch;
    bool bias, residual;
    Activation act;
  };
  for (const LinearCase& c : {LinearCase{70, 45, 3, true, true, Activation::kGELU},
                              LinearCase{768, 1000, 1, true, false, Activation::kNone},
                              LinearCase{33, 7, 17, false, false, Activation::kReLU},
                              LinearCase{1, 1, 2, true, true, Activation::kHardSigmoid}}) {
    const OneNode g = LinearGraph(c.k, c.n, c.bias, c.act, c.residual, seed++);
    for (Isa isa : kIsas) {
      if (isa > DetectIsa()) continue;
      for (int threads : {1, 2}) {
        CheckOp(&CreateLinearOp, g, c.batch, isa, threads,
                absl::StrFormat("linear %d->%d", c.k, c.n));
      }
    }
  }
}

TEST(GemmConvOpTest, PlansForEveryBatchShareOnePackedCopy) {
  const OneNode g = ConvGraph({8, 8, 16}, Conv(32, 3, 1, 1, 2), true, 9);
  WeightCache cache;
  for (int64_t batch : {1, 4, 8}) {
    auto op = CreateGeneralConvOp(PlanInput(g, batch, Isa::kPortable, 2, &cache));
    ASSERT_TRUE(op.ok()) << op.status();
  }
  EXPECT_EQ(cache.size(), 1u);
}

TEST(GemmConvOpTest, ReportsUsefulFlopsAndKernel) {
  const Isa isa = DetectIsa();
  const OneNode g = ConvGraph({14, 14, 64}, Conv(64, 3, 1, 1, 8), true, 3);
  WeightCache cache;
  auto op = CreateGeneralConvOp(PlanInput(g, 2, isa, 2, &cache));
  ASSERT_TRUE(op.ok()) << op.status();
  EXPECT_EQ((*op)->Flops(), 2 * 2 * 14 * 14 * 64 * 9 * 8);
  EXPECT_NE((*op)->Describe().find(kernels::GetGemmConfig(isa).igemm_name), std::string::npos)
      << (*op)->Describe();
  EXPECT_GE((*op)->NumTiles(0), 8) << "2 workers want about 4 tiles each";

  const OneNode pw = ConvGraph({56, 56, 96}, Conv(384, 1, 1, 0), true, 4);
  auto dense = CreatePointwiseConvOp(PlanInput(pw, 8, isa, 2, &cache));
  ASSERT_TRUE(dense.ok()) << dense.status();
  EXPECT_EQ((*dense)->Flops(), 2 * 8 * 56 * 56 * 384 * 96);
  EXPECT_NE((*dense)->Describe().find("M=25088 N=384 K=96"), std::string::npos)
      << (*dense)->Describe();
}

TEST(GemmConvOpTest, RejectsWhatItCannotPlan) {
  WeightCache cache;
  const OneNode k3 = ConvGraph({8, 8, 16}, Conv(16, 3, 1, 1), true, 5);
  EXPECT_EQ(CreatePointwiseConvOp(PlanInput(k3, 1, Isa::kPortable, 1, &cache)).status().code(),
            absl::StatusCode::kInvalidArgument);

  OneNode unloaded = ConvGraph({8, 8, 16}, Conv(16, 1, 1, 0), true, 5);
  unloaded.graph.mutable_param(unloaded.graph.node(unloaded.node).params[0]).data.clear();
  EXPECT_EQ(
      CreatePointwiseConvOp(PlanInput(unloaded, 1, Isa::kPortable, 1, &cache)).status().code(),
      absl::StatusCode::kInvalidArgument);

  OneNode normed = ConvGraph({8, 8, 16}, Conv(16, 3, 1, 1, 2), true, 5);
  normed.graph.mutable_node(normed.node).attr<Conv2DAttrs>().fused_channel_norm = true;
  EXPECT_EQ(CreateGeneralConvOp(PlanInput(normed, 1, Isa::kPortable, 1, &cache)).status().code(),
            absl::StatusCode::kUnimplemented);

  const OneNode fc = LinearGraph(16, 8, true, Activation::kNone, false, 5);
  OpPlanInput bad = PlanInput(fc, 1, Isa::kPortable, 1, &cache);
  bad.output_dims = Dims{1, 1, 9};
  EXPECT_EQ(CreateLinearOp(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = PlanInput(fc, 1, Isa::kPortable, 1, nullptr);
  EXPECT_EQ(CreateLinearOp(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace visionserve::engine
