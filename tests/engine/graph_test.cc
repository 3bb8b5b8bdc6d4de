#include "engine/graph.h"

#include "gtest/gtest.h"

namespace visionserve::engine {
namespace {

TEST(GraphTest, ConvInfersOutputDimsWithStridePaddingDilation) {
  Graph g;
  ValueId x = g.Input("x", {17, 10, 8});
  Conv2DAttrs a;
  a.out_channels = 16;
  a.kernel_h = a.kernel_w = 3;
  a.stride_h = a.stride_w = 2;
  a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = 1;
  ValueId y = g.Conv2D(x, a, true, "conv");
  EXPECT_EQ(g.value(y).dims, (Dims{9, 5, 16}));
  a.stride_h = a.stride_w = 1;
  a.dilation_h = a.dilation_w = 2;
  a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = 2;
  EXPECT_EQ(g.value(g.Conv2D(x, a, false, "dil")).dims, (Dims{17, 10, 16}));
}

TEST(GraphTest, ParamsFollowTorchNamesAndShapes) {
  Graph g;
  ValueId x = g.Input("x", {8, 8, 12});
  Conv2DAttrs a;
  a.out_channels = 24;
  a.kernel_h = a.kernel_w = 3;
  a.groups = 3;
  g.Conv2D(x, a, true, "features.0");
  ASSERT_EQ(g.params().size(), 2u);
  EXPECT_EQ(g.param(0).name, "features.0.weight");
  EXPECT_EQ(g.param(0).shape, (std::vector<int64_t>{24, 4, 3, 3}));
  EXPECT_EQ(g.param(1).name, "features.0.bias");
  EXPECT_EQ(g.param(0).fan_in, 36);
}

TEST(GraphTest, ParameterCountSkipsBatchNormBuffers) {
  Graph g;
  ValueId x = g.Input("x", {4, 4, 3});
  Conv2DAttrs a;
  a.out_channels = 8;
  a.kernel_h = a.kernel_w = 3;
  ValueId y = g.BatchNorm(g.Conv2D(x, a, false, "c"), "bn");
  g.MarkOutput(g.Linear(g.GlobalAvgPool(y), 10, true, "fc"));
  // conv 8*3*3*3 = 216, bn weight+bias 16, fc 80+10.
  EXPECT_EQ(g.ParameterCount(), 216 + 16 + 90);
}

TEST(GraphTest, MacsCountConvGroupsAndLinear) {
  Graph g;
  ValueId x = g.Input("x", {10, 10, 8});
  Conv2DAttrs a;
  a.out_channels = 8;
  a.kernel_h = a.kernel_w = 3;
  a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = 1;
  a.groups = 2;
  ValueId y = g.Conv2D(x, a, false, "c");
  g.MarkOutput(g.Linear(g.GlobalAvgPool(y), 5, false, "fc"));
  EXPECT_EQ(g.Macs(), 100 * 8 * 4 * 9 + 8 * 5);
}

TEST(GraphTest, ValidateReportsMissingWeightsAndOutputs) {
  Graph g;
  ValueId x = g.Input("x", {4, 4, 3});
  ValueId y = g.Linear(g.GlobalAvgPool(x), 2, true, "fc");
  EXPECT_FALSE(g.Validate().ok());  // no outputs
  g.MarkOutput(y);
  absl::Status s = g.Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("fc.weight"), std::string::npos) << s;
  for (Param& p : g.mutable_params()) p.data.assign(p.numel(), 0.f);
  EXPECT_TRUE(g.Validate().ok());
}

TEST(GraphTest, CompactDropsDeadNodesAndRenumbers) {
  Graph g;
  ValueId x = g.Input("x", {4, 4, 3});
  ValueId a = g.Act(x, Activation::kReLU);
  ValueId b = g.Act(a, Activation::kSigmoid);
  g.MarkOutput(b);
  g.mutable_node(0).dead = true;
  g.mutable_node(1).inputs[0] = x;
  g.Compact();
  ASSERT_EQ(g.nodes().size(), 1u);
  EXPECT_EQ(g.node(0).inputs[0], g.inputs()[0]);
  EXPECT_EQ(g.outputs()[0], g.node(0).output);
  EXPECT_EQ(g.value(g.node(0).output).producer, 0);
  EXPECT_TRUE(g.Validate().ok());
}

}  // namespace
}  // namespace visionserve::engine
