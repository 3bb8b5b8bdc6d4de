#pragma once

// The zoo's catalog: one entry per model variant with torchvision 0.14's published metadata for
// its DEFAULT ImageNet-1k weights (parameter count, GFLOPS as the weights' "_ops", acc@1) and the
// preprocessing those weights expect, plus the architecture hyper-parameters the builder uses.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "models/arch.h"

namespace visionserve::models {

struct ModelInfo {
  std::string name;             // torchvision model function name, e.g. "regnet_y_400mf"
  std::string family;           // "regnet", "convnext", "efficientnet", "resnet", "mobilenet"
  int input_size = 224;         // center-crop size the weights were evaluated at
  int resize_size = 256;        // shorter side is resized to this before the crop
  std::string interpolation;    // resize filter: "bilinear" or "bicubic"
  std::array<float, 3> mean{};  // RGB normalisation of [0, 1] pixels
  std::array<float, 3> std{};   // (fields below spell ::std:: since this member is named std)
  int64_t params = 0;           // published num_params (learnable; BN running stats excluded)
  double gmacs = 0;           // published "_ops" (torchvision reports GMACs under the name GFLOPS)
  double top1 = 0;            // published ImageNet-1k acc@1 (%) of the weights named in top1_source
  ::std::string top1_source;  // e.g. "torchvision 0.14 RegNet_Y_400MF_Weights.IMAGENET1K_V2"
  int num_classes = 1000;
  ArchParams arch;
};

// All variants, in a stable order (grouped by family).
const std::vector<ModelInfo>& Catalog();

// The entry named `name` (exact match). NOT_FOUND otherwise, with the closest names in the
// message (e.g. "did you mean: regnet_y_400mf, regnet_x_400mf").
absl::StatusOr<const ModelInfo*> FindModel(std::string_view name);

}  // namespace visionserve::models
