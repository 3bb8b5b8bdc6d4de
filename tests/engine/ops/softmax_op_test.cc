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

TEST(SoftmaxOpTest, MatchesReferenceInAndOutOfPlace) {
  uint32_t seed = 1;
  for (Dims d : {Dims{1, 1, 1}, Dims{1, 1, 1000}, Dims{1, 1, 17}, Dims{4, 5, 33}}) {
    // Wide logits exercise the max subtraction: exp(80) alone would overflow a float sum.
    for (float scale : {1.f, 80.f}) {
      SCOPED_TRACE(absl::StrFormat("%s scale %g", d.ToString(), scale));
      Graph g;
      g.MarkOutput(g.Softmax(g.Input("x", d)));
      for (int64_t batch : {1, 8}) {
        const Tensor x = testing::RandomTensor(batch, d, seed++, -scale, scale);
        auto want = RunReference(g, {&x, 1});
        ASSERT_TRUE(want.ok()) << want.status();
        for (Isa isa : testing::SupportedIsas()) {
          for (int threads : {1, 2}) {
            OpRunOptions o;
            o.isa = isa, o.num_threads = threads, o.batch = batch, o.seed = seed;
            auto out = RunOp(g, 0, {&x}, o);
            ASSERT_TRUE(out.ok()) << out.status();
            // Relative to each probability (floor 1e-30): exp and the sum are a few ulps.
            double worst = 0;
            for (int64_t i = 0; i < x.size(); ++i) {
              const double w = (*want)[0].data()[i];
              worst = std::max(worst, std::abs(out->output.data()[i] - w) / std::max(w, 1e-30));
            }
            EXPECT_LE(worst, 2e-6) << IsaName(isa) << " " << out->describe;
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

}  // namespace
}  // namespace visionserve::engine
