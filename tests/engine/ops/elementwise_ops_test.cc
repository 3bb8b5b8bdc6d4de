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

constexpr Activation kActs[] = {
    Activation::kNone, Activation::kReLU,    Activation::kReLU6,     Activation::kSiLU,
    Activation::kGELU, Activation::kSigmoid, Activation::kHardSwish, Activation::kHardSigmoid};

// Runs the graph's last node out of place and in place (when the op allows it) for every ISA,
// thread count and batch, and compares with the reference interpreter.
void CheckAgainstReference(const Graph& g, double tol, uint32_t seed, bool in_place_ok = true) {
  const int32_t node = static_cast<int32_t>(g.nodes().size()) - 1;
  ASSERT_EQ(TraitsOf(g.node(node).type).in_place_ok, in_place_ok);
  for (int64_t batch : {1, 2, 5}) {
    std::vector<Tensor> inputs;
    for (ValueId v : g.inputs()) {
      inputs.push_back(testing::RandomTensor(batch, g.value(v).dims, seed + v, -4.f, 4.f));
    }
    auto want = RunReference(g, inputs);
    ASSERT_TRUE(want.ok()) << want.status();
    std::vector<const Tensor*> ptrs;
    for (const Tensor& t : inputs) ptrs.push_back(&t);
    for (Isa isa : testing::SupportedIsas()) {
      for (int threads : {1, 2, 3}) {
        SCOPED_TRACE(absl::StrFormat("%s batch %d threads %d", IsaName(isa), batch, threads));
        OpRunOptions o;
        o.isa = isa, o.num_threads = threads, o.batch = batch, o.seed = seed;
        auto out = RunOp(g, node, ptrs, o);
        ASSERT_TRUE(out.ok()) << out.status();
        EXPECT_LE(testing::MaxRelDiff(out->output, (*want)[0]), tol) << out->describe;
        if (in_place_ok) {
          o.in_place = true;
          auto same = RunOp(g, node, ptrs, o);
          ASSERT_TRUE(same.ok()) << same.status();
          EXPECT_TRUE(testing::BitwiseEqual(same->output, out->output))
              << "in place differs: " << same->describe;
        }
      }
    }
  }
}

TEST(ActivationOpTest, EveryActivationMatchesReferenceInAndOutOfPlace) {
  uint32_t seed = 1;
  for (Activation act : kActs) {
    for (Dims d : {Dims{1, 1, 3}, Dims{5, 7, 17}, Dims{64, 64, 33}}) {
      SCOPED_TRACE(absl::StrFormat("%s %s", ActivationName(act), d.ToString()));
      Graph g;
      g.MarkOutput(g.Act(g.Input("x", d), act));
      CheckAgainstReference(g, 1e-6, seed++);
    }
  }
}

TEST(AddOpTest, SumWithActivationMatchesReferenceInAndOutOfPlace) {
  uint32_t seed = 100;
  for (Activation act : kActs) {
    for (Dims d : {Dims{1, 1, 5}, Dims{13, 11, 24}, Dims{40, 40, 64}}) {
      SCOPED_TRACE(absl::StrFormat("%s %s", ActivationName(act), d.ToString()));
      Graph g;
      const ValueId a = g.Input("a", d);
      const ValueId b = g.Input("b", d);
      g.MarkOutput(g.Add(a, b, act));
      CheckAgainstReference(g, 1e-6, seed++);
    }
  }
}

TEST(MulOpTest, PerImageChannelScaleMatchesReferenceInAndOutOfPlace) {
  uint32_t seed = 200;
  for (Dims d : {Dims{1, 1, 7}, Dims{9, 9, 17}, Dims{56, 56, 96}, Dims{3, 5, 100}}) {
    SCOPED_TRACE(d.ToString());
    Graph g;
    const ValueId x = g.Input("x", d);
    const ValueId s = g.Input("s", Dims{1, 1, d.c});
    g.MarkOutput(g.Mul(x, s));
    CheckAgainstReference(g, 1e-6, seed++);
  }
}

TEST(ChannelScaleOpTest, ParameterScaleMatchesReferenceInAndOutOfPlace) {
  uint32_t seed = 300;
  for (Dims d : {Dims{1, 1, 7}, Dims{9, 9, 17}, Dims{28, 28, 192}}) {
    SCOPED_TRACE(d.ToString());
    Graph g;
    g.MarkOutput(g.ChannelScale(g.Input("x", d), "layer_scale"));
    testing::RandomizeParams(g, seed);
    CheckAgainstReference(g, 1e-6, seed++);
  }
}

TEST(ElementwiseOpsTest, TilesScaleWithWorkersAndDescribeKernels) {
  Graph g;
  const ValueId a = g.Input("a", Dims{56, 56, 96});
  const ValueId b = g.Input("b", Dims{56, 56, 96});
  g.MarkOutput(g.Add(a, b, Activation::kReLU));
  const Tensor ta = testing::RandomTensor(1, Dims{56, 56, 96}, 1);
  const Tensor tb = testing::RandomTensor(1, Dims{56, 56, 96}, 2);
  OpRunOptions o;
  o.isa = DetectIsa();
  auto one = RunOp(g, 0, {&ta, &tb}, o);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->tiles, 1) << "a single worker runs one tile";
  o.num_threads = 2;
  auto two = RunOp(g, 0, {&ta, &tb}, o);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->tiles, 8) << two->describe;
  EXPECT_NE(two->describe.find("add+relu f32_vadd__"), std::string::npos) << two->describe;
}

TEST(ElementwiseOpsTest, RejectsMismatchedShapesAndMissingParams) {
  OpRunOptions o;
  {
    Graph g;
    const ValueId x = g.Input("x", Dims{4, 4, 8});
    const ValueId s = g.Input("s", Dims{1, 1, 8});
    g.MarkOutput(g.Mul(x, s));
    g.mutable_node(0).inputs = {x, x};  // a full tensor where the 1×1×C scale belongs
    const Tensor t = testing::RandomTensor(1, Dims{4, 4, 8}, 1);
    auto got = RunOp(g, 0, {&t, &t}, o);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  }
  {
    Graph g;
    g.MarkOutput(g.ChannelScale(g.Input("x", Dims{2, 2, 8}), "gamma"));  // params not filled
    const Tensor t = testing::RandomTensor(1, Dims{2, 2, 8}, 1);
    auto got = RunOp(g, 0, {&t}, o);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  }
}

}  // namespace
}  // namespace visionserve::engine
