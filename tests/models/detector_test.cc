// The zoo's detectors: catalog, graph contract, and the planned engine against the reference
// interpreter at a reduced resolution (so the reference stays fast).

#include "models/detector.h"

#include <cmath>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "engine/executor.h"
#include "engine/reference.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

namespace visionserve::models {
namespace {

using engine::CompiledModel;
using engine::CompileOptions;
using engine::Tensor;

TEST(DetectorCatalogTest, ThreeBackbonesAtThreeSizes) {
  std::set<std::string> names, backbones;
  for (const DetectorInfo& d : DetectorCatalog()) {
    SCOPED_TRACE(d.name);
    EXPECT_TRUE(names.insert(d.name).second);
    backbones.insert(d.backbone);
    EXPECT_EQ(d.input_size % 32, 0);
    EXPECT_EQ(d.num_classes, 80);
    EXPECT_EQ(d.anchors, (d.input_size / 8) * (d.input_size / 8) +
                             (d.input_size / 16) * (d.input_size / 16) +
                             (d.input_size / 32) * (d.input_size / 32));
    EXPECT_GT(d.params, 1'000'000);
    EXPECT_GT(d.gmacs, 0.3);
  }
  EXPECT_EQ(names.size(), 9u);
  EXPECT_EQ(backbones,
            (std::set<std::string>{"efficientnet_b0", "regnet_y_400mf", "convnext_tiny"}));
  auto d640 = FindDetector("det_regnet_y_400mf_640");
  ASSERT_TRUE(d640.ok());
  EXPECT_EQ((*d640)->anchors, 8400);  // YOLOv8's 640×640 anchor count
  // MACs grow with the input area; parameters do not depend on it.
  auto d320 = FindDetector("det_regnet_y_400mf_320");
  ASSERT_TRUE(d320.ok());
  EXPECT_EQ((*d320)->params, (*d640)->params);
  EXPECT_NEAR((*d640)->gmacs / (*d320)->gmacs, 4.0, 0.01);
}

TEST(DetectorCatalogTest, UnknownNamesAndSizesAreErrors) {
  auto missing = BuildDetector("det_resnet_9");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto odd = BuildDetector("det_regnet_y_400mf_320", BuildOptions{.input_size = 300});
  EXPECT_EQ(odd.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(odd.status().message(), "multiple of 32")) << odd.status();
}

class DetectorRunTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DetectorRunTest, PlannedEngineMatchesReferenceAndEmitsYoloConvention) {
  BuildOptions bo;
  bo.input_size = 64;
  auto graph = BuildDetector(GetParam(), bo);
  ASSERT_TRUE(graph.ok()) << graph.status();
  ASSERT_EQ(graph->outputs().size(), 1u);
  const engine::Dims out = graph->value(graph->outputs()[0]).dims;
  EXPECT_EQ(graph->value(graph->outputs()[0]).name, "detections");
  EXPECT_EQ(out, (engine::Dims{84, 8 * 8 + 4 * 4 + 2 * 2, 1}));
  const engine::Dims in = graph->value(graph->inputs()[0]).dims;
  Tensor x = engine::testing::RandomTensor(2, in, 5, 0.f, 1.f);
  auto ref = engine::RunReference(*graph, {&x, 1});
  ASSERT_TRUE(ref.ok()) << ref.status();
  const Tensor& want = (*ref)[0];
  const int64_t anchors = out.w;
  for (int64_t n = 0; n < 2; ++n) {
    const float* img = want.image(n);
    for (int64_t a = 0; a < anchors; ++a) {
      // Box centres stay near their anchor cell (distances ≤ reg_max − 1 cells), sizes ≥ 0.
      EXPECT_GE(img[2 * anchors + a], 0.f);
      EXPECT_GE(img[3 * anchors + a], 0.f);
      EXPECT_TRUE(std::isfinite(img[0 * anchors + a]) && std::isfinite(img[1 * anchors + a]));
      for (int64_t k = 4; k < out.h; ++k) {
        EXPECT_GT(img[k * anchors + a], 0.f);
        EXPECT_LT(img[k * anchors + a], 1.f);
      }
    }
  }
  CompileOptions co;
  co.num_threads = 2;
  co.batch_sizes = {2};
  auto model = CompiledModel::Create(*std::move(graph), co);
  ASSERT_TRUE(model.ok()) << model.status();
  Tensor got(2, (*model)->output_dims());
  ASSERT_TRUE((*model)->Run(2, x.span(), got.span()).ok());
  EXPECT_LT(engine::testing::RelMaxDiff(got, want), 1e-3) << GetParam();
  engine::testing::ExpectImagesReadInPlace(**model, x, got);
}

INSTANTIATE_TEST_SUITE_P(Backbones, DetectorRunTest,
                         ::testing::Values("det_efficientnet_b0_320", "det_regnet_y_400mf_320",
                                           "det_convnext_tiny_320"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace visionserve::models
