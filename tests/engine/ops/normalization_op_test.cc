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

TEST(LayerNormOpTest, MatchesReferenceInAndOutOfPlace) {
  uint32_t seed = 1;
  for (Dims d :
       {Dims{1, 1, 1}, Dims{1, 1, 768}, Dims{7, 9, 17}, Dims{28, 28, 96}, Dims{3, 3, 100}}) {
    for (float eps : {1e-6f, 1e-5f}) {
      SCOPED_TRACE(absl::StrFormat("%s eps %g", d.ToString(), eps));
      Graph g;
      g.MarkOutput(g.LayerNorm(g.Input("x", d), "ln", eps));
      testing::RandomizeParams(g, seed);
      ASSERT_TRUE(TraitsOf(OpType::kLayerNorm).in_place_ok);
      for (int64_t batch : {1, 3}) {
        const Tensor x = testing::RandomTensor(batch, d, seed++, -3.f, 5.f);
        auto want = RunReference(g, {&x, 1});
        ASSERT_TRUE(want.ok()) << want.status();
        for (Isa isa : testing::SupportedIsas()) {
          for (int threads : {1, 2, 4}) {
            OpRunOptions o;
            o.isa = isa, o.num_threads = threads, o.batch = batch, o.seed = seed;
            auto out = RunOp(g, 0, {&x}, o);
            ASSERT_TRUE(out.ok()) << out.status();
            EXPECT_LE(testing::MaxRelDiff(out->output, (*want)[0]), 2e-6)
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

TEST(LayerNormOpTest, RejectsMissingAffine) {
  Graph g;
  g.MarkOutput(g.LayerNorm(g.Input("x", Dims{2, 2, 8}), "ln"));  // params never filled
  const Tensor x = testing::RandomTensor(1, Dims{2, 2, 8}, 1);
  auto got = RunOp(g, 0, {&x}, OpRunOptions{});
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
}

}  // namespace
}  // namespace visionserve::engine
