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

void CheckNode(const Graph& g, double tol, uint32_t seed) {
  for (int64_t batch : {1, 2, 9}) {
    const Tensor x = testing::RandomTensor(batch, g.value(g.inputs()[0]).dims, seed);
    auto want = RunReference(g, {&x, 1});
    ASSERT_TRUE(want.ok()) << want.status();
    for (Isa isa : testing::SupportedIsas()) {
      for (int threads : {1, 2, 6}) {
        OpRunOptions o;
        o.isa = isa, o.num_threads = threads, o.batch = batch, o.seed = seed;
        auto out = RunOp(g, 0, {&x}, o);
        ASSERT_TRUE(out.ok()) << out.status();
        EXPECT_LE(testing::MaxRelDiff(out->output, (*want)[0]), tol)
            << IsaName(isa) << " batch " << batch << " threads " << threads << " " << out->describe;
      }
    }
  }
}

TEST(GlobalAvgPoolOpTest, MatchesReferenceOverImageAndChannelTiles) {
  uint32_t seed = 1;
  for (Dims d :
       {Dims{1, 1, 1}, Dims{7, 7, 1280}, Dims{112, 112, 32}, Dims{5, 3, 17}, Dims{14, 14, 100}}) {
    SCOPED_TRACE(d.ToString());
    Graph g;
    g.MarkOutput(g.GlobalAvgPool(g.Input("x", d)));
    ASSERT_FALSE(TraitsOf(OpType::kGlobalAvgPool).in_place_ok);
    CheckNode(g, 2e-6, seed++);
  }
}

TEST(GlobalAvgPoolOpTest, SplitsChannelsForSmallBatches) {
  Graph g;
  g.MarkOutput(g.GlobalAvgPool(g.Input("x", Dims{7, 7, 1280})));
  const Tensor x = testing::RandomTensor(1, Dims{7, 7, 1280}, 3);
  OpRunOptions o;
  o.num_threads = 2;
  auto out = RunOp(g, 0, {&x}, o);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->tiles, 8) << out->describe;
}

TEST(MaxPoolOpTest, MatchesReferenceOverKernelsStridesAndPaddings) {
  uint32_t seed = 100;
  for (auto [k, s, pad] : {std::tuple<int, int, int>{3, 2, 1},
                           {3, 1, 1},
                           {2, 2, 0},
                           {3, 2, 0},
                           {5, 3, 2},
                           {1, 1, 0}}) {
    for (Dims d : {Dims{112, 112, 64}, Dims{7, 9, 17}, Dims{1, 1, 3}, Dims{6, 5, 33}}) {
      MaxPoolAttrs a;
      a.kernel_h = a.kernel_w = k;
      a.stride_h = a.stride_w = s;
      a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = pad;
      if (d.h + 2 * pad < k || d.w + 2 * pad < k) continue;
      SCOPED_TRACE(absl::StrFormat("%s k%d s%d p%d", d.ToString(), k, s, pad));
      Graph g;
      g.MarkOutput(g.MaxPool(g.Input("x", d), a));
      CheckNode(g, 0, seed++);
    }
  }
}

TEST(MaxPoolOpTest, RejectsPaddingAsLargeAsTheKernel) {
  MaxPoolAttrs a;
  a.kernel_h = a.kernel_w = 2;
  a.stride_h = a.stride_w = 1;
  a.pad_top = a.pad_left = a.pad_bottom = a.pad_right = 2;
  Graph g;
  g.MarkOutput(g.MaxPool(g.Input("x", Dims{4, 4, 8}), a));
  const Tensor x = testing::RandomTensor(1, Dims{4, 4, 8}, 1);
  auto got = RunOp(g, 0, {&x}, OpRunOptions{});
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
}

}  // namespace
}  // namespace visionserve::engine
