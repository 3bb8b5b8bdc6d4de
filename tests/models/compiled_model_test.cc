// Whole zoo models through the planned engine vs the reference interpreter, at a reduced
// resolution so the reference stays fast: checks passes, planner, ops and kernels together on
// the real architectures.

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/executor.h"
#include "engine/reference.h"
#include "gtest/gtest.h"
#include "models/catalog.h"
#include "models/zoo.h"
#include "tests/engine/test_util.h"

namespace visionserve::models {
namespace {

using engine::CompiledModel;
using engine::CompileOptions;
using engine::Tensor;

class ZooModelRunTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooModelRunTest, PlannedEngineMatchesReference) {
  BuildOptions bo;
  bo.input_size = 64;
  auto graph = BuildModel(GetParam(), bo);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const engine::Dims in = graph->value(graph->inputs()[0]).dims;
  Tensor x = engine::testing::RandomTensor(2, in, 11, -2.f, 2.f);
  auto ref = engine::RunReference(*graph, {&x, 1});
  ASSERT_TRUE(ref.ok()) << ref.status();
  const Tensor& want = (*ref)[0];
  // Synthetic weights keep logits finite and not degenerate.
  double mag = 0;
  for (float v : want.span()) {
    ASSERT_TRUE(std::isfinite(v));
    mag = std::max(mag, std::abs(double{v}));
  }
  EXPECT_GT(mag, 1e-3);
  EXPECT_LT(mag, 1e4);

  CompileOptions co;
  co.num_threads = 2;
  co.batch_sizes = {2};
  auto model = CompiledModel::Create(*std::move(graph), co);
  ASSERT_TRUE(model.ok()) << model.status();
  Tensor got(2, (*model)->output_dims());
  ASSERT_TRUE((*model)->Run(2, x.span(), got.span()).ok());
  EXPECT_LT(engine::testing::RelMaxDiff(got, want), 1e-3) << GetParam();
  auto plan = (*model)->GetPlan(2);
  ASSERT_TRUE(plan.ok());
  EXPECT_LT((*plan)->arena_bytes(), (*plan)->intermediate_bytes() / 2);
  engine::testing::ExpectImagesReadInPlace(**model, x, got);
}

INSTANTIATE_TEST_SUITE_P(Families, ZooModelRunTest,
                         ::testing::Values("regnet_y_400mf", "regnet_x_400mf", "convnext_tiny",
                                           "efficientnet_b0", "resnet50", "mobilenet_v2",
                                           "mobilenet_v3_large", "mobilenet_v3_small"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace visionserve::models
