#include <cmath>
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

Graph DecodeGraph(const std::vector<Dims>& levels, const DetectDecodeAttrs& a) {
  Graph g;
  std::vector<ValueId> xs;
  for (const Dims& d : levels) xs.push_back(g.Input("level", d));
  g.MarkOutput(g.DetectDecode(xs, a));
  return g;
}

TEST(DetectDecodeOpTest, MatchesReferenceOnEveryIsa) {
  for (auto [classes, reg_max] : std::vector<std::pair<int64_t, int>>{{80, 16}, {1, 16}, {3, 7}}) {
    SCOPED_TRACE(classes);
    DetectDecodeAttrs a{classes, reg_max, {8, 16, 32}};
    const int64_t c = 4 * reg_max + classes;
    // Odd level sizes (e.g. a 200×104 input) so chunks straddle levels.
    const std::vector<Dims> levels = {Dims{25, 13, c}, Dims{13, 7, c}, Dims{7, 4, c}};
    const Graph g = DecodeGraph(levels, a);
    EXPECT_EQ(g.value(g.outputs()[0]).dims, (Dims{4 + classes, 25 * 13 + 13 * 7 + 7 * 4, 1}));
    for (int64_t batch : {1, 3}) {
      std::vector<Tensor> xs;
      for (size_t l = 0; l < levels.size(); ++l) {
        xs.push_back(testing::RandomTensor(batch, levels[l], 7 + l, -4.f, 4.f));
      }
      auto want = RunReference(g, xs);
      ASSERT_TRUE(want.ok()) << want.status();
      for (Isa isa : testing::SupportedIsas()) {
        for (int threads : {1, 3}) {
          OpRunOptions o;
          o.isa = isa, o.num_threads = threads, o.batch = batch;
          auto out = RunOp(g, 0, {&xs[0], &xs[1], &xs[2]}, o);
          ASSERT_TRUE(out.ok()) << out.status();
          // Boxes are up to ~32·16 px: compare relative to that scale.
          EXPECT_LE(testing::MaxRelDiff(out->output, (*want)[0], 16.0), 2e-5)
              << IsaName(isa) << " " << out->describe;
        }
      }
    }
  }
}

TEST(DetectDecodeOpTest, KnownLogitsGiveKnownBoxes) {
  // One 2×2 level at stride 10, reg_max 4, 2 classes: put all mass on bin 2 for left/top and bin
  // 1 for right/bottom, so the box of cell (x, y) spans (x+0.5-2, y+0.5-2)..(x+0.5+1, y+0.5+1).
  DetectDecodeAttrs a{2, 4, {10}};
  const Graph g = DecodeGraph({Dims{2, 2, 18}}, a);
  Tensor x(1, Dims{2, 2, 18});
  for (int64_t cell = 0; cell < 4; ++cell) {
    float* px = x.data() + cell * 18;
    for (int k = 0; k < 16; ++k) px[k] = -100.f;
    px[0 * 4 + 2] = px[1 * 4 + 2] = 100.f;
    px[2 * 4 + 1] = px[3 * 4 + 1] = 100.f;
    px[16] = 0.f;    // sigmoid 0.5
    px[17] = 100.f;  // sigmoid 1
  }
  OpRunOptions o;
  auto out = RunOp(g, 0, {&x}, o);
  ASSERT_TRUE(out.ok()) << out.status();
  const float* y = out->output.data();
  for (int64_t cell = 0; cell < 4; ++cell) {
    const float ax = static_cast<float>(cell % 2) + 0.5f, ay = static_cast<float>(cell / 2) + 0.5f;
    EXPECT_NEAR(y[0 * 4 + cell], (ax - 0.5f) * 10, 1e-3);  // cx = ((ax-2)+(ax+1))/2 · 10
    EXPECT_NEAR(y[1 * 4 + cell], (ay - 0.5f) * 10, 1e-3);
    EXPECT_NEAR(y[2 * 4 + cell], 30.f, 1e-3);
    EXPECT_NEAR(y[3 * 4 + cell], 30.f, 1e-3);
    EXPECT_NEAR(y[4 * 4 + cell], 0.5f, 1e-6);
    EXPECT_NEAR(y[5 * 4 + cell], 1.0f, 1e-6);
  }
}

}  // namespace
}  // namespace visionserve::engine
