#include "engine/passes.h"

#include "engine/reference.h"
#include "gtest/gtest.h"
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

int CountLive(const Graph& g, OpType t) {
  int n = 0;
  for (const Node& node : g.nodes()) n += !node.dead && node.type == t;
  return n;
}

// Optimizes a copy of g and checks that the reference interpreter gives the same outputs.
Graph ExpectSameFunction(const Graph& g, Dims in_dims, PassStats* stats = nullptr) {
  Graph opt = g;
  EXPECT_TRUE(OptimizeGraph(opt, stats).ok());
  Tensor x = RandomTensor(2, in_dims, 7);
  auto before = RunReference(g, {&x, 1});
  auto after = RunReference(opt, {&x, 1});
  EXPECT_TRUE(before.ok() && after.ok());
  if (before.ok() && after.ok()) {
    EXPECT_LT(RelMaxDiff((*after)[0], (*before)[0]), 1e-5);
  }
  return opt;
}

TEST(PassesTest, FoldsBatchNormAndActivationIntoConv) {
  Graph g;
  ValueId x = g.Input("x", {9, 7, 5});
  ValueId y = g.Act(g.BatchNorm(g.Conv2D(x, Conv(12, 3, 2), false, "c"), "bn"), Activation::kSiLU);
  g.MarkOutput(y);
  RandomizeParams(g, 1);
  PassStats st;
  Graph opt = ExpectSameFunction(g, {9, 7, 5}, &st);
  EXPECT_EQ(st.batchnorms_folded, 1);
  EXPECT_EQ(st.activations_fused, 1);
  ASSERT_EQ(opt.nodes().size(), 1u);
  EXPECT_EQ(opt.node(0).attr<Conv2DAttrs>().act, Activation::kSiLU);
  EXPECT_EQ(opt.node(0).params.size(), 2u);  // a bias was created for the folded BN
}

TEST(PassesTest, SplitHalvesConcatenatedBackInOrderAreNotCopied) {
  Graph g;
  ValueId x = g.Input("x", {6, 5, 4});
  ValueId a = g.Conv2D(x, Conv(16, 1), true, "cv1");
  ValueId y0 = g.Slice(a, 0, 8), y1 = g.Slice(a, 8, 16);
  ValueId m = g.Conv2D(y1, Conv(8, 3), true, "m");  // y1 is still read here
  ValueId b = g.Conv2D(x, Conv(10, 1), true, "b");
  ValueId p = g.Slice(b, 0, 4), q = g.Slice(b, 6, 10);  // not contiguous: kept
  g.MarkOutput(g.Concat(std::vector<ValueId>{y0, y1, m, q, p}));
  RandomizeParams(g, 3);
  PassStats st;
  Graph opt = ExpectSameFunction(g, {6, 5, 4}, &st);
  EXPECT_EQ(st.slices_merged, 2);
  EXPECT_EQ(CountLive(opt, OpType::kSlice), 3);  // y1 (read by m), p, q
  for (const Node& n : opt.nodes()) {
    if (n.type == OpType::kConcat) {
      EXPECT_EQ(n.inputs.size(), 4u);
    }
  }
}

TEST(PassesTest, FusesResidualAddWithReluAfterTheSum) {
  // ResNet-style: relu(bn(conv(relu(bn(conv(x))))) + x).
  Graph g;
  ValueId x = g.Input("x", {6, 6, 8});
  ValueId a = g.Act(g.BatchNorm(g.Conv2D(x, Conv(8, 3), false, "c1"), "b1"), Activation::kReLU);
  ValueId b = g.BatchNorm(g.Conv2D(a, Conv(8, 3), false, "c2"), "b2");
  g.MarkOutput(g.Add(b, x, Activation::kReLU));
  RandomizeParams(g, 2);
  PassStats st;
  Graph opt = ExpectSameFunction(g, {6, 6, 8}, &st);
  EXPECT_EQ(st.residuals_fused, 1);
  ASSERT_EQ(opt.nodes().size(), 2u);
  const auto& c2 = opt.node(1).attr<Conv2DAttrs>();
  EXPECT_TRUE(c2.fused_residual);
  EXPECT_EQ(c2.act, Activation::kReLU);
  EXPECT_EQ(opt.node(1).inputs[1], opt.inputs()[0]);
}

TEST(PassesTest, DoesNotFuseResidualWhenConvAlreadyHasActivation) {
  Graph g;
  ValueId x = g.Input("x", {5, 5, 4});
  ValueId a = g.Act(g.Conv2D(x, Conv(4, 1), true, "c"), Activation::kReLU);
  g.MarkOutput(g.Add(a, x));
  RandomizeParams(g, 3);
  PassStats st;
  Graph opt = ExpectSameFunction(g, {5, 5, 4}, &st);
  EXPECT_EQ(st.residuals_fused, 0);
  EXPECT_EQ(CountLive(opt, OpType::kAdd), 1);
}

TEST(PassesTest, FusesPrimitiveSqueezeExcite) {
  Graph g;
  ValueId x = g.Input("x", {5, 5, 16});
  ValueId p = g.GlobalAvgPool(x);
  ValueId f1 = g.Act(g.Conv2D(p, Conv(4, 1), true, "se.fc1"), Activation::kSiLU);
  ValueId f2 = g.Act(g.Conv2D(f1, Conv(16, 1), true, "se.fc2"), Activation::kSigmoid);
  g.MarkOutput(g.Mul(x, f2));
  RandomizeParams(g, 4);
  PassStats st;
  Graph opt = ExpectSameFunction(g, {5, 5, 16}, &st);
  EXPECT_EQ(st.squeeze_excites_fused, 1);
  ASSERT_EQ(opt.nodes().size(), 1u);
  EXPECT_EQ(opt.node(0).type, OpType::kSqueezeExcite);
  EXPECT_EQ(opt.node(0).attr<SqueezeExciteAttrs>().squeeze_channels, 4);
  EXPECT_EQ(opt.node(0).attr<SqueezeExciteAttrs>().inner_act, Activation::kSiLU);
}

TEST(PassesTest, FusesConvNeXtBlock) {
  // dwconv 7x7 -> LayerNorm -> 1x1 (4C) -> GELU -> 1x1 (C) -> layer scale -> + x.
  Graph g;
  const int64_t c = 12;
  ValueId x = g.Input("x", {7, 7, c});
  ValueId d = g.Conv2D(x, Conv(c, 7, 1, c), true, "dw");
  ValueId n = g.LayerNorm(d, "ln");
  ValueId h = g.Act(g.Conv2D(n, Conv(4 * c, 1), true, "pw1"), Activation::kGELU);
  ValueId o = g.ChannelScale(g.Conv2D(h, Conv(c, 1), true, "pw2"), "layer_scale");
  g.MarkOutput(g.Add(o, x));
  RandomizeParams(g, 5);
  PassStats st;
  Graph opt = ExpectSameFunction(g, {7, 7, c}, &st);
  EXPECT_EQ(st.layernorms_fused, 1);
  EXPECT_EQ(st.layer_scales_folded, 1);
  EXPECT_EQ(st.residuals_fused, 1);
  ASSERT_EQ(opt.nodes().size(), 3u);
  EXPECT_TRUE(opt.node(0).attr<Conv2DAttrs>().fused_channel_norm);
  EXPECT_EQ(opt.node(1).attr<Conv2DAttrs>().act, Activation::kGELU);
  EXPECT_TRUE(opt.node(2).attr<Conv2DAttrs>().fused_residual);
}

TEST(PassesTest, KeepsLayerNormWhoseOutputIsUsedTwice) {
  Graph g;
  ValueId x = g.Input("x", {4, 4, 6});
  ValueId d = g.Conv2D(x, Conv(6, 3, 1, 6), true, "dw");
  ValueId n = g.LayerNorm(d, "ln");
  ValueId p = g.Conv2D(n, Conv(6, 1), true, "pw");
  g.MarkOutput(g.Add(p, n));
  RandomizeParams(g, 6);
  PassStats st;
  ExpectSameFunction(g, {4, 4, 6}, &st);
  EXPECT_EQ(st.layernorms_fused, 0);
}

}  // namespace
}  // namespace visionserve::engine
