#include "models/catalog.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_join.h"

namespace visionserve::models {

namespace {

constexpr std::array<float, 3> kImageNetMean = {0.485f, 0.456f, 0.406f};
constexpr std::array<float, 3> kImageNetStd = {0.229f, 0.224f, 0.225f};

// The fields every entry spells out; the rest (ImageNet normalisation, 1000 classes) is common.
struct Row {
  const char* name;
  const char* family;
  int input_size;
  int resize_size;
  const char* interpolation;
  int64_t params;
  double gmacs;
  double top1;
  const char* weights;  // torchvision weights enum member the metadata belongs to
  ArchParams arch;
};

ModelInfo FromRow(const Row& r) {
  ModelInfo m;
  m.name = r.name;
  m.family = r.family;
  m.input_size = r.input_size;
  m.resize_size = r.resize_size;
  m.interpolation = r.interpolation;
  m.mean = kImageNetMean;
  m.std = kImageNetStd;
  m.params = r.params;
  m.gmacs = r.gmacs;
  m.top1 = r.top1;
  m.top1_source = std::string("torchvision 0.14 ") + r.weights;
  m.num_classes = 1000;
  m.arch = r.arch;
  return m;
}

// Metadata from torchvision's weight enums (num_params, "_ops", "_metrics" acc@1 and the
// transforms' crop/resize/interpolation) of each model's DEFAULT weights.
std::vector<ModelInfo> MakeCatalog() {
  const Row rows[] = {
      // RegNet: BlockParams.from_init_params(depth, w_0, w_a, w_m, group_width, se_ratio).
      {"regnet_y_400mf", "regnet", 224, 232, "bilinear", 4344144, 0.402, 75.804,
       "RegNet_Y_400MF_Weights.IMAGENET1K_V2", RegNetParams{16, 48, 27.89, 2.09, 8, 0.25}},
      {"regnet_y_800mf", "regnet", 224, 232, "bilinear", 6432512, 0.834, 78.828,
       "RegNet_Y_800MF_Weights.IMAGENET1K_V2", RegNetParams{14, 56, 38.84, 2.4, 16, 0.25}},
      {"regnet_y_1_6gf", "regnet", 224, 232, "bilinear", 11202430, 1.612, 80.876,
       "RegNet_Y_1_6GF_Weights.IMAGENET1K_V2", RegNetParams{27, 48, 20.71, 2.65, 24, 0.25}},
      {"regnet_y_3_2gf", "regnet", 224, 232, "bilinear", 19436338, 3.176, 81.982,
       "RegNet_Y_3_2GF_Weights.IMAGENET1K_V2", RegNetParams{21, 80, 42.63, 2.66, 24, 0.25}},
      {"regnet_x_400mf", "regnet", 224, 232, "bilinear", 5495976, 0.414, 74.864,
       "RegNet_X_400MF_Weights.IMAGENET1K_V2", RegNetParams{22, 24, 24.48, 2.54, 16}},
      {"regnet_x_800mf", "regnet", 224, 232, "bilinear", 7259656, 0.800, 77.522,
       "RegNet_X_800MF_Weights.IMAGENET1K_V2", RegNetParams{16, 56, 35.73, 2.28, 16}},
      {"regnet_x_1_6gf", "regnet", 224, 232, "bilinear", 9190136, 1.603, 79.668,
       "RegNet_X_1_6GF_Weights.IMAGENET1K_V2", RegNetParams{18, 80, 34.01, 2.25, 24}},
      {"regnet_x_3_2gf", "regnet", 224, 232, "bilinear", 15296552, 3.177, 81.196,
       "RegNet_X_3_2GF_Weights.IMAGENET1K_V2", RegNetParams{25, 88, 26.31, 2.25, 48}},
      // ConvNeXt: CNBlockConfig channels and depths.
      {"convnext_tiny", "convnext", 224, 236, "bilinear", 28589128, 4.456, 82.520,
       "ConvNeXt_Tiny_Weights.IMAGENET1K_V1", ConvNeXtParams{{96, 192, 384, 768}, {3, 3, 9, 3}}},
      {"convnext_small", "convnext", 224, 230, "bilinear", 50223688, 8.684, 83.616,
       "ConvNeXt_Small_Weights.IMAGENET1K_V1", ConvNeXtParams{{96, 192, 384, 768}, {3, 3, 27, 3}}},
      {"convnext_base", "convnext", 224, 232, "bilinear", 88591464, 15.355, 84.062,
       "ConvNeXt_Base_Weights.IMAGENET1K_V1", ConvNeXtParams{{128, 256, 512, 1024}, {3, 3, 27, 3}}},
      {"convnext_large", "convnext", 224, 232, "bilinear", 197767336, 34.361, 84.414,
       "ConvNeXt_Large_Weights.IMAGENET1K_V1",
       ConvNeXtParams{{192, 384, 768, 1536}, {3, 3, 27, 3}}},
      // EfficientNet: width_mult, depth_mult, BatchNorm eps (B5–B7 pass eps=1e-3).
      {"efficientnet_b0", "efficientnet", 224, 256, "bicubic", 5288548, 0.386, 77.692,
       "EfficientNet_B0_Weights.IMAGENET1K_V1", EfficientNetParams{1.0, 1.0, 1e-5f}},
      {"efficientnet_b1", "efficientnet", 240, 255, "bilinear", 7794184, 0.687, 79.838,
       "EfficientNet_B1_Weights.IMAGENET1K_V2", EfficientNetParams{1.0, 1.1, 1e-5f}},
      {"efficientnet_b2", "efficientnet", 288, 288, "bicubic", 9109994, 1.088, 80.608,
       "EfficientNet_B2_Weights.IMAGENET1K_V1", EfficientNetParams{1.1, 1.2, 1e-5f}},
      {"efficientnet_b3", "efficientnet", 300, 320, "bicubic", 12233232, 1.827, 82.008,
       "EfficientNet_B3_Weights.IMAGENET1K_V1", EfficientNetParams{1.2, 1.4, 1e-5f}},
      {"efficientnet_b4", "efficientnet", 380, 384, "bicubic", 19341616, 4.394, 83.384,
       "EfficientNet_B4_Weights.IMAGENET1K_V1", EfficientNetParams{1.4, 1.8, 1e-5f}},
      {"efficientnet_b5", "efficientnet", 456, 456, "bicubic", 30389784, 10.266, 83.444,
       "EfficientNet_B5_Weights.IMAGENET1K_V1", EfficientNetParams{1.6, 2.2, 1e-3f}},
      {"efficientnet_b6", "efficientnet", 528, 528, "bicubic", 43040704, 19.068, 84.008,
       "EfficientNet_B6_Weights.IMAGENET1K_V1", EfficientNetParams{1.8, 2.6, 1e-3f}},
      {"efficientnet_b7", "efficientnet", 600, 600, "bicubic", 66347960, 37.746, 84.122,
       "EfficientNet_B7_Weights.IMAGENET1K_V1", EfficientNetParams{2.0, 3.1, 1e-3f}},
      // ResNet: Bottleneck blocks per layer.
      {"resnet50", "resnet", 224, 232, "bilinear", 25557032, 4.089, 80.858,
       "ResNet50_Weights.IMAGENET1K_V2", ResNetParams{{3, 4, 6, 3}}},
      // MobileNet V2 / V3.
      {"mobilenet_v2", "mobilenet", 224, 232, "bilinear", 3504872, 0.301, 72.154,
       "MobileNet_V2_Weights.IMAGENET1K_V2", MobileNetV2Params{1.0}},
      {"mobilenet_v3_large", "mobilenet", 224, 232, "bilinear", 5483032, 0.217, 75.274,
       "MobileNet_V3_Large_Weights.IMAGENET1K_V2", MobileNetV3Params{true}},
      {"mobilenet_v3_small", "mobilenet", 224, 256, "bilinear", 2542856, 0.057, 67.668,
       "MobileNet_V3_Small_Weights.IMAGENET1K_V1", MobileNetV3Params{false}},
  };
  std::vector<ModelInfo> out;
  for (const Row& r : rows) out.push_back(FromRow(r));
  return out;
}

// Levenshtein distance, for "did you mean" suggestions.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

const std::vector<ModelInfo>& Catalog() {
  static const std::vector<ModelInfo>* const kCatalog = new std::vector<ModelInfo>(MakeCatalog());
  return *kCatalog;
}

absl::StatusOr<const ModelInfo*> FindModel(std::string_view name) {
  const std::vector<ModelInfo>& catalog = Catalog();
  for (const ModelInfo& m : catalog) {
    if (m.name == name) return &m;
  }
  // The three nearest names by edit distance (ties keep catalog order).
  std::vector<std::pair<size_t, std::string>> ranked;
  for (const ModelInfo& m : catalog) ranked.emplace_back(EditDistance(name, m.name), m.name);
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> closest;
  for (size_t i = 0; i < ranked.size() && i < 3; ++i) closest.push_back(ranked[i].second);
  return absl::NotFoundError("unknown model \"" + std::string(name) +
                             "\"; did you mean: " + absl::StrJoin(closest, ", "));
}

}  // namespace visionserve::models
