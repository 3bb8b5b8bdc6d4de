#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/graph.h"
#include "engine/ops/op.h"
#include "engine/reference.h"
#include "engine/tensor.h"
#include "gtest/gtest.h"
#include "tests/engine/ops/op_test_harness.h"
#include "tests/engine/test_util.h"

namespace visionserve::engine {
namespace {

using testing::OpRunOptions;
using testing::RunOp;

struct DwCase {
  Dims in{9, 7, 17};
  int kh = 3, kw = 3;
  int stride = 1;
  int pad_top = 1, pad_left = 1, pad_bottom = 1, pad_right = 1;
  int dilation = 1;
  bool bias = true;
  bool residual = false;
  Activation act = Activation::kNone;
  bool norm = false;
};

std::string Describe(const DwCase& c) {
  return absl::StrFormat("in %s k %dx%d s%d pad %d,%d,%d,%d dil %d bias=%d res=%d act=%s norm=%d",
                         c.in.ToString(), c.kh, c.kw, c.stride, c.pad_top, c.pad_left, c.pad_bottom,
                         c.pad_right, c.dilation, c.bias, c.residual, ActivationName(c.act),
                         c.norm);
}

// A graph with inputs x [, residual] and the depthwise conv node (the last node).
Graph MakeGraph(const DwCase& c, uint32_t seed) {
  Graph g;
  const ValueId x = g.Input("x", c.in);
  Conv2DAttrs a;
  a.out_channels = c.in.c;
  a.groups = c.in.c;
  a.kernel_h = c.kh, a.kernel_w = c.kw;
  a.stride_h = a.stride_w = c.stride;
  a.pad_top = c.pad_top, a.pad_left = c.pad_left, a.pad_bottom = c.pad_bottom;
  a.pad_right = c.pad_right;
  a.dilation_h = a.dilation_w = c.dilation;
  a.act = c.act;
  a.fused_channel_norm = c.norm;
  a.norm_eps = 1e-5f;
  ValueId residual = kNoValue;
  if (c.residual) {
    const int64_t oh =
        (c.in.h + c.pad_top + c.pad_bottom - c.dilation * (c.kh - 1) - 1) / c.stride + 1;
    const int64_t ow =
        (c.in.w + c.pad_left + c.pad_right - c.dilation * (c.kw - 1) - 1) / c.stride + 1;
    residual = g.Input("residual", Dims{oh, ow, c.in.c});
  }
  const ValueId y = g.Conv2D(x, a, c.bias, "dw");
  if (c.residual) {
    Node& n = g.mutable_node(static_cast<int32_t>(g.nodes().size()) - 1);
    n.inputs.push_back(residual);
    n.attr<Conv2DAttrs>().fused_residual = true;
  }
  g.MarkOutput(y);
  testing::RandomizeParams(g, seed);
  return g;
}

void CheckCase(const DwCase& c, uint32_t seed) {
  SCOPED_TRACE(Describe(c));
  const Graph g = MakeGraph(c, seed);
  const int32_t node = static_cast<int32_t>(g.nodes().size()) - 1;
  for (int64_t batch : {1, 3}) {
    std::vector<Tensor> inputs;
    for (ValueId v : g.inputs()) {
      inputs.push_back(testing::RandomTensor(batch, g.value(v).dims, seed + v));
    }
    auto want = RunReference(g, inputs);
    ASSERT_TRUE(want.ok()) << want.status();
    std::vector<const Tensor*> in_ptrs;
    for (const Tensor& t : inputs) in_ptrs.push_back(&t);
    for (Isa isa : testing::SupportedIsas()) {
      for (int threads : {1, 2, 5}) {
        SCOPED_TRACE(absl::StrFormat("%s batch %d threads %d", IsaName(isa), batch, threads));
        OpRunOptions o;
        o.isa = isa, o.num_threads = threads, o.batch = batch, o.seed = seed;
        auto got = RunOp(g, node, in_ptrs, o);
        ASSERT_TRUE(got.ok()) << got.status();
        const double tol = c.norm ? 2e-5 : 1e-5;
        EXPECT_LE(testing::MaxRelDiff(got->output, (*want)[0]), tol) << got->describe;
        EXPECT_EQ(got->flops, 2 * batch * (*want)[0].dims().elements() * c.kh * c.kw);
      }
    }
  }
}

TEST(DepthwiseConvOpTest, MatchesReferenceOverKernelsStridesAndPaddings) {
  uint32_t seed = 1;
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      for (Dims in :
           {Dims{9, 7, 17}, Dims{7, 7, 32}, Dims{1, 1, 3}, Dims{14, 15, 100}, Dims{7, 5, 200}}) {
        DwCase c;
        c.in = in, c.kh = c.kw = k, c.stride = stride;
        c.pad_top = c.pad_left = c.pad_bottom = c.pad_right = k / 2;
        CheckCase(c, seed++);
        c.pad_top = 0, c.pad_left = k - 1, c.pad_bottom = k - 1, c.pad_right = 0;
        CheckCase(c, seed++);
      }
    }
  }
}

TEST(DepthwiseConvOpTest, GenericShapesMatchReference) {
  uint32_t seed = 100;
  for (auto [kh, kw, stride, dil] : {std::tuple<int, int, int, int>{1, 1, 1, 1},
                                     {3, 3, 1, 2},
                                     {3, 5, 2, 1},
                                     {4, 4, 2, 1},
                                     {3, 3, 3, 1}}) {
    DwCase c;
    c.in = Dims{11, 10, 19};
    c.kh = kh, c.kw = kw, c.stride = stride, c.dilation = dil;
    c.pad_top = c.pad_left = (kh - 1) / 2 * dil;
    c.pad_bottom = c.pad_right = kh / 2;
    CheckCase(c, seed++);
  }
}

TEST(DepthwiseConvOpTest, FusedEpilogueMatchesReference) {
  uint32_t seed = 200;
  for (Activation act : {Activation::kReLU, Activation::kReLU6, Activation::kSiLU,
                         Activation::kHardSwish, Activation::kGELU}) {
    for (bool residual : {false, true}) {
      DwCase c;
      c.in = Dims{12, 13, 40};
      c.kh = c.kw = 3;
      c.act = act, c.residual = residual, c.bias = !residual;
      CheckCase(c, seed++);
    }
  }
}

TEST(DepthwiseConvOpTest, FusedChannelNormMatchesReference) {
  DwCase c;
  c.in = Dims{14, 14, 96};
  c.kh = c.kw = 7;
  c.pad_top = c.pad_left = c.pad_bottom = c.pad_right = 3;
  c.norm = true;
  CheckCase(c, 300);
  c.in = Dims{7, 7, 37};
  c.residual = true;
  CheckCase(c, 301);
}

TEST(DepthwiseConvOpTest, PacksWeightsOncePerNodeAndDescribesKernel) {
  DwCase c;
  c.in = Dims{8, 8, 24};
  c.kh = c.kw = 7;
  c.pad_top = c.pad_left = c.pad_bottom = c.pad_right = 3;
  c.act = Activation::kReLU;
  const Graph g = MakeGraph(c, 7);
  WeightCache cache;
  for (int64_t batch : {1, 4}) {
    OpRunOptions o;
    o.isa = DetectIsa(), o.batch = batch, o.num_threads = 2;
    const Tensor xb = testing::RandomTensor(batch, c.in, 8);
    auto got = RunOp(g, 0, {&xb}, o, &cache);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_NE(got->describe.find("dwconv 7x7 s1+relu f32_dwconv_7x7__"), std::string::npos)
        << got->describe;
    EXPECT_NE(got->describe.find("tiles="), std::string::npos);
    EXPECT_GE(got->tiles, batch == 1 ? 4 : 8) << "about 4 tiles per worker";
  }
  EXPECT_EQ(cache.size(), 1u);
}

// Small images with many channels split over channel groups (no halo rows to re-stage);
// with the channel norm, every pixel's channels stay in one tile.
TEST(DepthwiseConvOpTest, SplitsSmallImagesOverChannelGroups) {
  DwCase c;
  c.in = Dims{7, 7, 1152};
  c.kh = c.kw = 5;
  c.pad_top = c.pad_left = c.pad_bottom = c.pad_right = 2;
  c.act = Activation::kSiLU;
  const Graph g = MakeGraph(c, 11);
  const Tensor x = testing::RandomTensor(1, c.in, 12);
  OpRunOptions o;
  o.isa = DetectIsa(), o.num_threads = 2;
  auto got = RunOp(g, 0, {&x}, o);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_NE(got->describe.find("rows/tile=7 channels/tile=144 tiles=8"), std::string::npos)
      << got->describe;
  auto want = RunReference(g, {&x, 1});
  ASSERT_TRUE(want.ok());
  EXPECT_LE(testing::MaxRelDiff(got->output, (*want)[0]), 1e-5);

  c.act = Activation::kNone;
  c.norm = true;
  auto normed = RunOp(MakeGraph(c, 11), 0, {&x}, o);
  ASSERT_TRUE(normed.ok()) << normed.status();
  EXPECT_NE(normed->describe.find("channels/tile=1152"), std::string::npos) << normed->describe;
}

TEST(DepthwiseConvOpTest, RejectsInconsistentNodes) {
  DwCase c;
  Graph g = MakeGraph(c, 9);
  OpRunOptions o;
  const Tensor x = testing::RandomTensor(1, c.in, 1);
  {
    Graph bad = g;
    bad.mutable_param(bad.node(0).params[0]).data.clear();  // weights never loaded
    auto got = RunOp(bad, 0, {&x}, o);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  }
  {
    Graph bad = g;
    bad.mutable_node(0).attr<Conv2DAttrs>().fused_residual = true;  // no second input
    auto got = RunOp(bad, 0, {&x}, o);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  }
  {
    Graph bad = g;
    bad.mutable_node(0).attr<Conv2DAttrs>().pad_bottom = 3;  // output dims no longer match
    auto got = RunOp(bad, 0, {&x}, o);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  }
}

}  // namespace
}  // namespace visionserve::engine
