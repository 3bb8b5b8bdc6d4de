#include "models/zoo.h"

#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "engine/graph.h"
#include "gtest/gtest.h"
#include "models/catalog.h"

namespace visionserve::models {
namespace {

using engine::Graph;
using engine::OpType;

// torchvision 0.14 weights metadata, written out independently of models/catalog.cc so a typo in
// either is caught: "num_params" and "_ops" (GMACs at the weights' crop size).
struct Published {
  int64_t params;
  double gmacs;
};
const std::map<std::string, Published>& PublishedTable() {
  static const auto* const kTable = new std::map<std::string, Published>{
      {"regnet_y_400mf", {4344144, 0.402}},     {"regnet_y_800mf", {6432512, 0.834}},
      {"regnet_y_1_6gf", {11202430, 1.612}},    {"regnet_y_3_2gf", {19436338, 3.176}},
      {"regnet_x_400mf", {5495976, 0.414}},     {"regnet_x_800mf", {7259656, 0.800}},
      {"regnet_x_1_6gf", {9190136, 1.603}},     {"regnet_x_3_2gf", {15296552, 3.177}},
      {"convnext_tiny", {28589128, 4.456}},     {"convnext_small", {50223688, 8.684}},
      {"convnext_base", {88591464, 15.355}},    {"convnext_large", {197767336, 34.361}},
      {"efficientnet_b0", {5288548, 0.386}},    {"efficientnet_b1", {7794184, 0.687}},
      {"efficientnet_b2", {9109994, 1.088}},    {"efficientnet_b3", {12233232, 1.827}},
      {"efficientnet_b4", {19341616, 4.394}},   {"efficientnet_b5", {30389784, 10.266}},
      {"efficientnet_b6", {43040704, 19.068}},  {"efficientnet_b7", {66347960, 37.746}},
      {"resnet50", {25557032, 4.089}},          {"mobilenet_v2", {3504872, 0.301}},
      {"mobilenet_v3_large", {5483032, 0.217}}, {"mobilenet_v3_small", {2542856, 0.057}},
  };
  return *kTable;
}

std::vector<std::string> CatalogNames() {
  std::vector<std::string> names;
  for (const ModelInfo& m : Catalog()) names.push_back(m.name);
  return names;
}

// Shape of the param named `name`, or empty if there is none.
std::vector<int64_t> ShapeOf(const Graph& g, const std::string& name) {
  for (const engine::Param& p : g.params()) {
    if (p.name == name) return p.shape;
  }
  return {};
}

class ZooVariantTest : public ::testing::TestWithParam<std::string> {};

// Everything structural about one variant, from one build (the big ones take a second or two).
TEST_P(ZooVariantTest, MatchesTorchvision) {
  const std::string& name = GetParam();
  auto info = FindModel(name);
  ASSERT_TRUE(info.ok()) << info.status();
  auto published = PublishedTable().find(name);
  ASSERT_NE(published, PublishedTable().end()) << "add " << name << " to PublishedTable";

  auto g = BuildModel(name);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(g->Validate().ok()) << g->Validate();

  EXPECT_EQ(g->ParameterCount(), published->second.params);
  EXPECT_EQ((*info)->params, published->second.params);
  const double gmacs = static_cast<double>(g->Macs()) / 1e9;
  EXPECT_NEAR(gmacs, published->second.gmacs, 0.02 * published->second.gmacs);
  EXPECT_DOUBLE_EQ((*info)->gmacs, published->second.gmacs);

  ASSERT_EQ(g->inputs().size(), 1u);
  const engine::Value& in = g->value(g->inputs()[0]);
  EXPECT_EQ(in.name, "input");
  EXPECT_EQ(in.dims, (engine::Dims{(*info)->input_size, (*info)->input_size, 3}));
  ASSERT_EQ(g->outputs().size(), 1u);
  const engine::Value& out = g->value(g->outputs()[0]);
  EXPECT_EQ(out.name, "logits");
  EXPECT_EQ(out.dims, (engine::Dims{1, 1, 1000}));

  std::set<std::string> param_names;
  for (const engine::Param& p : g->params()) {
    EXPECT_TRUE(param_names.insert(p.name).second) << "duplicate param " << p.name;
  }
  for (const engine::Node& n : g->nodes()) {
    EXPECT_NE(n.type, OpType::kSoftmax) << "logits are returned before softmax";
  }
}

INSTANTIATE_TEST_SUITE_P(Catalog, ZooVariantTest, ::testing::ValuesIn(CatalogNames()),
                         [](const auto& info) { return info.param; });

TEST(ZooTest, PublishedTableCoversTheCatalog) {
  EXPECT_EQ(PublishedTable().size(), Catalog().size());
}

// torchvision state_dict keys and shapes of a few parameters per family.
TEST(ZooTest, ParamsHaveTorchvisionNamesAndShapes) {
  const std::map<std::string, std::map<std::string, std::vector<int64_t>>> expected = {
      {"regnet_y_400mf",
       {{"stem.0.weight", {32, 3, 3, 3}},
        {"stem.1.running_var", {32}},
        {"trunk_output.block1.block1-0.proj.0.weight", {48, 32, 1, 1}},
        {"trunk_output.block1.block1-0.f.a.0.weight", {48, 32, 1, 1}},
        {"trunk_output.block1.block1-0.f.b.0.weight", {48, 8, 3, 3}},
        {"trunk_output.block1.block1-0.f.se.fc1.weight", {8, 48, 1, 1}},
        {"trunk_output.block1.block1-0.f.se.fc2.bias", {48}},
        {"trunk_output.block1.block1-0.f.c.1.weight", {48}},
        {"trunk_output.block4.block4-5.f.c.0.weight", {440, 440, 1, 1}},
        {"fc.weight", {1000, 440}},
        {"fc.bias", {1000}}}},
      {"regnet_x_400mf",
       {{"trunk_output.block1.block1-0.f.b.0.weight", {32, 16, 3, 3}},
        {"trunk_output.block4.block4-11.f.c.1.bias", {400}},
        {"fc.weight", {1000, 400}}}},
      {"convnext_tiny",
       {{"features.0.0.weight", {96, 3, 4, 4}},
        {"features.0.0.bias", {96}},
        {"features.0.1.weight", {96}},
        {"features.1.0.block.0.weight", {96, 1, 7, 7}},
        {"features.1.0.block.2.weight", {96}},
        {"features.1.0.block.3.weight", {384, 96}},
        {"features.1.0.block.3.bias", {384}},
        {"features.1.0.block.5.weight", {96, 384}},
        {"features.1.0.layer_scale", {96, 1, 1}},
        {"features.2.0.bias", {96}},
        {"features.2.1.weight", {192, 96, 2, 2}},
        {"features.7.2.layer_scale", {768, 1, 1}},
        {"classifier.0.weight", {768}},
        {"classifier.2.weight", {1000, 768}}}},
      {"efficientnet_b0",
       {{"features.0.0.weight", {32, 3, 3, 3}},
        {"features.1.0.block.0.0.weight", {32, 1, 3, 3}},
        {"features.1.0.block.1.fc1.weight", {8, 32, 1, 1}},
        {"features.1.0.block.2.0.weight", {16, 32, 1, 1}},
        {"features.2.0.block.0.0.weight", {96, 16, 1, 1}},
        {"features.2.0.block.1.0.weight", {96, 1, 3, 3}},
        {"features.2.0.block.2.fc1.weight", {4, 96, 1, 1}},
        {"features.2.0.block.3.1.running_mean", {24}},
        {"features.6.3.block.1.0.weight", {1152, 1, 5, 5}},
        {"features.8.0.weight", {1280, 320, 1, 1}},
        {"classifier.1.weight", {1000, 1280}}}},
      {"efficientnet_b3",
       {{"features.0.0.weight", {40, 3, 3, 3}},
        {"features.7.1.block.3.0.weight", {384, 2304, 1, 1}},
        {"features.8.0.weight", {1536, 384, 1, 1}},
        {"classifier.1.weight", {1000, 1536}}}},
      {"resnet50",
       {{"conv1.weight", {64, 3, 7, 7}},
        {"bn1.running_mean", {64}},
        {"layer1.0.conv1.weight", {64, 64, 1, 1}},
        {"layer1.0.downsample.0.weight", {256, 64, 1, 1}},
        {"layer1.0.downsample.1.weight", {256}},
        {"layer2.0.conv2.weight", {128, 128, 3, 3}},
        {"layer4.2.conv3.weight", {2048, 512, 1, 1}},
        {"fc.weight", {1000, 2048}}}},
      {"mobilenet_v2",
       {{"features.0.0.weight", {32, 3, 3, 3}},
        {"features.1.conv.0.0.weight", {32, 1, 3, 3}},
        {"features.1.conv.1.weight", {16, 32, 1, 1}},
        {"features.1.conv.2.running_var", {16}},
        {"features.2.conv.0.0.weight", {96, 16, 1, 1}},
        {"features.2.conv.2.weight", {24, 96, 1, 1}},
        {"features.2.conv.3.weight", {24}},
        {"features.18.0.weight", {1280, 320, 1, 1}},
        {"classifier.1.weight", {1000, 1280}}}},
      {"mobilenet_v3_large",
       {{"features.0.0.weight", {16, 3, 3, 3}},
        {"features.1.block.0.0.weight", {16, 1, 3, 3}},
        {"features.4.block.2.fc1.weight", {24, 72, 1, 1}},
        {"features.4.block.3.0.weight", {40, 72, 1, 1}},
        {"features.16.0.weight", {960, 160, 1, 1}},
        {"classifier.0.weight", {1280, 960}},
        {"classifier.3.weight", {1000, 1280}}}},
      {"mobilenet_v3_small",
       {{"features.1.block.1.fc1.weight", {8, 16, 1, 1}},
        {"features.1.block.2.0.weight", {16, 16, 1, 1}},
        {"features.12.0.weight", {576, 96, 1, 1}},
        {"classifier.0.weight", {1024, 576}}}},
  };
  for (const auto& [model, params] : expected) {
    BuildOptions opts;
    opts.synthetic_weights = false;
    auto g = BuildModel(model, opts);
    ASSERT_TRUE(g.ok()) << g.status();
    for (const auto& [param, shape] : params) {
      EXPECT_EQ(ShapeOf(*g, param), shape) << model << " " << param;
    }
  }
}

// The BatchNorm eps each torchvision model passes to its norm layers.
TEST(ZooTest, BatchNormEpsFollowsTorchvision) {
  const std::map<std::string, float> eps = {
      {"regnet_y_400mf", 1e-5f},  {"resnet50", 1e-5f},           {"mobilenet_v2", 1e-5f},
      {"efficientnet_b0", 1e-5f}, {"efficientnet_b4", 1e-5f},    {"efficientnet_b5", 1e-3f},
      {"efficientnet_b7", 1e-3f}, {"mobilenet_v3_large", 1e-3f}, {"mobilenet_v3_small", 1e-3f}};
  for (const auto& [model, want] : eps) {
    BuildOptions opts;
    opts.synthetic_weights = false;
    auto g = BuildModel(model, opts);
    ASSERT_TRUE(g.ok()) << g.status();
    int batch_norms = 0;
    for (const engine::Node& n : g->nodes()) {
      if (n.type != OpType::kBatchNorm) continue;
      ++batch_norms;
      EXPECT_FLOAT_EQ(n.attr<engine::BatchNormAttrs>().eps, want) << model << " " << n.name;
    }
    EXPECT_GT(batch_norms, 0) << model;
  }
}

// torchvision's RegNet quantises the width ramp to these stages (widths and depths).
TEST(ZooTest, RegNetStagesFollowBlockParams) {
  const std::map<std::string, std::vector<std::pair<int64_t, int>>> stages = {
      {"regnet_y_400mf", {{48, 1}, {104, 3}, {208, 6}, {440, 6}}},
      {"regnet_x_400mf", {{32, 1}, {64, 2}, {160, 7}, {400, 12}}},
      {"regnet_y_1_6gf", {{48, 2}, {120, 6}, {336, 17}, {888, 2}}},
  };
  for (const auto& [model, want] : stages) {
    BuildOptions opts;
    opts.synthetic_weights = false;
    auto g = BuildModel(model, opts);
    ASSERT_TRUE(g.ok()) << g.status();
    for (size_t s = 0; s < want.size(); ++s) {
      const std::string stage =
          "trunk_output.block" + std::to_string(s + 1) + ".block" + std::to_string(s + 1) + "-";
      const auto [width, depth] = want[s];
      EXPECT_EQ(ShapeOf(*g, stage + std::to_string(depth - 1) + ".f.c.1.weight"),
                std::vector<int64_t>{width})
          << model << " stage " << s + 1;
      EXPECT_TRUE(ShapeOf(*g, stage + std::to_string(depth) + ".f.c.1.weight").empty())
          << model << " stage " << s + 1 << " has more than " << depth << " blocks";
    }
  }
}

TEST(ZooTest, OptionsSetClassesAndResolution) {
  BuildOptions opts;
  opts.num_classes = 10;
  opts.input_size = 64;
  auto g = BuildModel("regnet_y_400mf", opts);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(g->Validate().ok());
  EXPECT_EQ(g->value(g->inputs()[0]).dims, (engine::Dims{64, 64, 3}));
  EXPECT_EQ(g->value(g->outputs()[0]).dims, (engine::Dims{1, 1, 10}));
  EXPECT_EQ(ShapeOf(*g, "fc.weight"), (std::vector<int64_t>{10, 440}));
  // Parameters do not depend on resolution; MACs scale with the pixel count.
  auto full = BuildModel("regnet_y_400mf");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(g->ParameterCount(), full->ParameterCount() - 990 * 441);
  EXPECT_LT(g->Macs(), full->Macs() / 10);
}

TEST(ZooTest, WithoutSyntheticWeightsParamsAreLeftForALoader) {
  BuildOptions opts;
  opts.synthetic_weights = false;
  auto g = BuildModel("mobilenet_v3_small", opts);
  ASSERT_TRUE(g.ok()) << g.status();
  for (const engine::Param& p : g->params()) EXPECT_TRUE(p.data.empty()) << p.name;
  EXPECT_FALSE(g->Validate().ok());
  EXPECT_EQ(g->ParameterCount(), 2542856);
}

TEST(ZooTest, RejectsBadRequests) {
  EXPECT_EQ(BuildModel("resnet51").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(BuildModel("resnet51").status().message(), "resnet50"));
  BuildOptions small;
  small.input_size = kMinInputSize - 1;
  EXPECT_EQ(BuildModel("convnext_tiny", small).status().code(), absl::StatusCode::kInvalidArgument);
  BuildOptions large;
  large.input_size = kMaxInputSize + 1;
  EXPECT_EQ(BuildModel("resnet50", large).status().code(), absl::StatusCode::kInvalidArgument);
  BuildOptions no_classes;
  no_classes.num_classes = 0;
  EXPECT_EQ(BuildModel("resnet50", no_classes).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ZooTest, SmallestInputBuildsEveryFamily) {
  for (const char* model : {"regnet_x_400mf", "convnext_tiny", "efficientnet_b0", "resnet50",
                            "mobilenet_v2", "mobilenet_v3_small"}) {
    BuildOptions opts;
    opts.input_size = kMinInputSize;
    opts.synthetic_weights = false;
    auto g = BuildModel(model, opts);
    ASSERT_TRUE(g.ok()) << model << ": " << g.status();
    EXPECT_EQ(g->value(g->outputs()[0]).dims, (engine::Dims{1, 1, 1000})) << model;
  }
}

}  // namespace
}  // namespace visionserve::models
