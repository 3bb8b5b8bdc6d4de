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

Graph MakeGraph(Dims d, int64_t squeeze, Activation inner, Activation gate, uint32_t seed) {
  Graph g;
  SqueezeExciteAttrs a;
  a.squeeze_channels = squeeze;
  a.inner_act = inner;
  a.gate_act = gate;
  g.MarkOutput(g.SqueezeExcite(g.Input("x", d), a, "se"));
  testing::RandomizeParams(g, seed);
  return g;
}

// In place is the normal case in a plan (SE consumes the depthwise conv's output, nothing else
// does): every run here is checked both ways, and must agree bit for bit.
TEST(SqueezeExciteOpTest, MatchesReferenceInAndOutOfPlace) {
  uint32_t seed = 1;
  ASSERT_TRUE(TraitsOf(OpType::kSqueezeExcite).in_place_ok);
  for (auto [d, s] : {std::pair<Dims, int64_t>{Dims{112, 112, 32}, 8},
                      {Dims{7, 7, 1152}, 48},
                      {Dims{14, 14, 120}, 32},
                      {Dims{5, 3, 17}, 3},
                      {Dims{1, 1, 40}, 10}}) {
    for (auto [inner, gate] : {std::pair{Activation::kSiLU, Activation::kSigmoid},
                               std::pair{Activation::kReLU, Activation::kHardSigmoid}}) {
      SCOPED_TRACE(absl::StrFormat("%s S=%d %s/%s", d.ToString(), s, ActivationName(inner),
                                   ActivationName(gate)));
      const Graph g = MakeGraph(d, s, inner, gate, seed);
      for (int64_t batch : {1, 3}) {
        const Tensor x = testing::RandomTensor(batch, d, seed++);
        auto want = RunReference(g, {&x, 1});
        ASSERT_TRUE(want.ok()) << want.status();
        for (Isa isa : testing::SupportedIsas()) {
          for (int threads : {1, 2}) {
            OpRunOptions o;
            o.isa = isa, o.num_threads = threads, o.batch = batch, o.seed = seed;
            auto out = RunOp(g, 0, {&x}, o);
            ASSERT_TRUE(out.ok()) << out.status();
            EXPECT_LE(testing::MaxRelDiff(out->output, (*want)[0]), 3e-6)
                << IsaName(isa) << " " << out->describe;
            o.in_place = true;
            auto same = RunOp(g, 0, {&x}, o);
            ASSERT_TRUE(same.ok()) << same.status();
            EXPECT_TRUE(testing::BitwiseEqual(same->output, out->output)) << IsaName(isa);
          }
        }
      }
    }
  }
}

TEST(SqueezeExciteOpTest, SharesWeightsAcrossPlansAndRejectsBadParams) {
  const Graph g = MakeGraph(Dims{4, 4, 24}, 6, Activation::kReLU, Activation::kSigmoid, 5);
  WeightCache cache;
  for (int64_t batch : {1, 2}) {
    const Tensor x = testing::RandomTensor(batch, Dims{4, 4, 24}, 1);
    OpRunOptions o;
    o.batch = batch;
    ASSERT_TRUE(RunOp(g, 0, {&x}, o, &cache).ok());
  }
  EXPECT_EQ(cache.size(), 1u);

  Graph bad = g;
  bad.mutable_param(bad.node(0).params[2]).data.pop_back();
  const Tensor x = testing::RandomTensor(1, Dims{4, 4, 24}, 1);
  auto got = RunOp(bad, 0, {&x}, OpRunOptions{});
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
}

}  // namespace
}  // namespace visionserve::engine
