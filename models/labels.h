#pragma once

// Class names built into the binary: ImageNet-1k (classifiers) and COCO-80 (detectors), in the
// index order of torchvision's weights. Regenerate with tools/gen_labels.py.

#include <array>
#include <string_view>

namespace visionserve::models {

extern const std::array<std::string_view, 1000> kImageNet1kLabels;
extern const std::array<std::string_view, 80> kCoco80Labels;

}  // namespace visionserve::models
