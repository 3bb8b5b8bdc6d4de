#include <array>
#include <cstdint>
#include <vector>

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

// Copies are exact: the op must equal the reference bit for bit, for every batch, thread count
// and (scrambled) tile order.
void CheckExact(const Graph& g, uint32_t seed) {
  for (int64_t batch : {1, 2, 5}) {
    std::vector<Tensor> xs;
    for (size_t i = 0; i < g.inputs().size(); ++i) {
      xs.push_back(testing::RandomTensor(batch, g.value(g.inputs()[i]).dims, seed + i));
    }
    std::vector<const Tensor*> ptrs;
    for (const Tensor& t : xs) ptrs.push_back(&t);
    auto want = RunReference(g, xs);
    ASSERT_TRUE(want.ok()) << want.status();
    for (int threads : {1, 2, 7}) {
      OpRunOptions o;
      o.num_threads = threads, o.batch = batch, o.seed = seed;
      auto out = RunOp(g, 0, ptrs, o);
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(testing::MaxRelDiff(out->output, (*want)[0]), 0.0)
          << "batch " << batch << " threads " << threads << " " << out->describe;
    }
  }
}

TEST(UpsampleOpTest, MatchesReferenceForOddSizesAndFactors) {
  uint32_t seed = 1;
  for (auto [d, fh, fw] : std::vector<std::tuple<Dims, int, int>>{{Dims{1, 1, 1}, 2, 2},
                                                                  {Dims{5, 3, 17}, 2, 2},
                                                                  {Dims{20, 20, 64}, 2, 2},
                                                                  {Dims{7, 9, 3}, 3, 1},
                                                                  {Dims{4, 6, 33}, 1, 4}}) {
    SCOPED_TRACE(d.ToString());
    Graph g;
    const ValueId y = g.Upsample(g.Input("x", d), fh, fw);
    EXPECT_EQ(g.value(y).dims, (Dims{d.h * fh, d.w * fw, d.c}));
    g.MarkOutput(y);
    CheckExact(g, seed++);
  }
}

TEST(ConcatOpTest, MatchesReferenceForUnevenChannelCounts) {
  uint32_t seed = 10;
  for (std::vector<int64_t> channels :
       {std::vector<int64_t>{1, 1}, {17, 3, 64}, {128, 64}, {5}, {3, 7, 11, 13, 1}}) {
    Graph g;
    std::vector<ValueId> xs;
    for (int64_t c : channels) xs.push_back(g.Input("x", Dims{9, 5, c}));
    const ValueId y = g.Concat(xs);
    int64_t total = 0;
    for (int64_t c : channels) total += c;
    EXPECT_EQ(g.value(y).dims, (Dims{9, 5, total}));
    g.MarkOutput(y);
    CheckExact(g, seed++);
  }
}

TEST(SliceOpTest, MatchesReferenceForEveryKindOfRange) {
  uint32_t seed = 11;
  for (const auto& [c, begin, end] : std::vector<std::array<int64_t, 3>>{
           {1, 0, 1}, {17, 0, 8}, {17, 8, 17}, {64, 16, 48}, {96, 95, 96}, {5, 1, 4}}) {
    Graph g;
    const ValueId y = g.Slice(g.Input("x", Dims{7, 5, c}), begin, end);
    EXPECT_EQ(g.value(y).dims, (Dims{7, 5, end - begin}));
    g.MarkOutput(y);
    CheckExact(g, seed++);
  }
}

TEST(ConcatOpTest, RejectsMismatchedSpatialSizesAtPlanTime) {
  Graph g;
  const ValueId a = g.Input("a", Dims{4, 4, 8});
  const ValueId b = g.Input("b", Dims{4, 4, 8});
  g.MarkOutput(g.Concat(std::vector<ValueId>{a, b}));
  OpPlanInput in;
  in.graph = &g;
  in.node_index = 0;
  in.input_dims = {Dims{4, 4, 8}, Dims{2, 4, 8}};
  in.inputs = {BufferRef{BufferRef::Kind::kInput, 0, 0}, BufferRef{BufferRef::Kind::kInput, 1, 0}};
  in.output_dims = Dims{4, 4, 16};
  EXPECT_EQ(TraitsOf(OpType::kConcat).factory(in).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace visionserve::engine
