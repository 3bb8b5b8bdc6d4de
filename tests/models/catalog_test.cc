#include "models/catalog.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace visionserve::models {
namespace {

TEST(CatalogTest, HasEveryVariantOnceWithSaneMetadata) {
  std::set<std::string> names;
  for (const ModelInfo& m : Catalog()) {
    SCOPED_TRACE(m.name);
    EXPECT_TRUE(names.insert(m.name).second) << "duplicate";
    EXPECT_TRUE(m.family == "regnet" || m.family == "convnext" || m.family == "efficientnet" ||
                m.family == "resnet" || m.family == "mobilenet")
        << m.family;
    EXPECT_GE(m.input_size, 224);
    EXPECT_GE(m.resize_size, m.input_size);
    EXPECT_TRUE(m.interpolation == "bilinear" || m.interpolation == "bicubic");
    EXPECT_FLOAT_EQ(m.mean[0], 0.485f);
    EXPECT_FLOAT_EQ(m.std[2], 0.225f);
    EXPECT_GT(m.params, 0);
    EXPECT_GT(m.gmacs, 0);
    EXPECT_GT(m.top1, 60);
    EXPECT_LT(m.top1, 90);
    EXPECT_TRUE(absl::StartsWith(m.top1_source, "torchvision 0.14 ")) << m.top1_source;
    EXPECT_TRUE(absl::StrContains(m.top1_source, "_Weights.IMAGENET1K_V")) << m.top1_source;
    EXPECT_EQ(m.num_classes, 1000);
  }
  EXPECT_EQ(names.size(), 24u);
}

TEST(CatalogTest, CarriesTheDefaultWeightsPreprocessing) {
  auto y400 = FindModel("regnet_y_400mf");
  ASSERT_TRUE(y400.ok());
  EXPECT_EQ((*y400)->input_size, 224);
  EXPECT_EQ((*y400)->resize_size, 232);
  EXPECT_EQ((*y400)->interpolation, "bilinear");
  EXPECT_DOUBLE_EQ((*y400)->top1, 75.804);
  EXPECT_EQ((*y400)->top1_source, "torchvision 0.14 RegNet_Y_400MF_Weights.IMAGENET1K_V2");

  auto b3 = FindModel("efficientnet_b3");
  ASSERT_TRUE(b3.ok());
  EXPECT_EQ((*b3)->input_size, 300);
  EXPECT_EQ((*b3)->resize_size, 320);
  EXPECT_EQ((*b3)->interpolation, "bicubic");

  auto tiny = FindModel("convnext_tiny");
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ((*tiny)->input_size, 224);
  EXPECT_EQ((*tiny)->resize_size, 236);
  EXPECT_EQ((*tiny)->interpolation, "bilinear");

  auto b7 = FindModel("efficientnet_b7");
  ASSERT_TRUE(b7.ok());
  EXPECT_EQ((*b7)->input_size, 600);
}

TEST(CatalogTest, FindModelReturnsTheEntry) {
  auto m = FindModel("mobilenet_v3_small");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->name, "mobilenet_v3_small");
  EXPECT_EQ((*m)->family, "mobilenet");
}

TEST(CatalogTest, UnknownNameIsNotFoundAndNamesTheClosestModels) {
  auto m = FindModel("regnet_y_400");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "regnet_y_400mf")) << m.status();

  auto typo = FindModel("efficientnet-b0");
  ASSERT_FALSE(typo.ok());
  EXPECT_TRUE(absl::StrContains(typo.status().message(), "efficientnet_b0")) << typo.status();
}

TEST(CatalogTest, LookupIsExact) {
  EXPECT_FALSE(FindModel("ResNet50").ok());
  EXPECT_FALSE(FindModel("").ok());
}

}  // namespace
}  // namespace visionserve::models
