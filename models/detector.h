#pragma once

// The zoo's detectors: a zoo classifier's feature extractor (taps at strides 8, 16 and 32), a
// PAN-FPN neck of CSP blocks (nearest upsample, concat, 1×1/3×3 conv-BN-SiLU, bottlenecks with
// residuals) and a decoupled anchor-free head (box: distribution-focal distances with reg_max
// bins; class: per-class logits), decoded in-graph to the widely used YOLOv8 output convention:
// one output "detections" with dims {4 + classes, anchors, 1}, i.e. [N, 4 + C, A] in memory, rows
// cx, cy, w, h in input pixels then sigmoid class scores. Anchors run stride 8, 16, 32, each
// row-major. Weights are seeded synthetic ones (or loaded by a caller); the input is an RGB image
// letterboxed to input_size × input_size and scaled to [0, 1] (YOLO's convention, no mean/std).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/graph.h"
#include "models/zoo.h"

namespace visionserve::models {

struct DetectorInfo {
  std::string name;                       // e.g. "det_regnet_y_400mf_416"
  std::string backbone;                   // zoo classifier whose features it taps
  int input_size = 640;                   // square, a multiple of 32
  int64_t num_classes = 80;               // COCO-80 labels by default
  int64_t neck_width = 64;                // channels at stride 8 (×2 at 16, ×4 at 32)
  int csp_depth = 1;                      // bottlenecks per CSP block
  int reg_max = 16;                       // distance bins per box side
  std::array<int64_t, 3> tap_channels{};  // the backbone's stage widths at strides 8, 16, 32
  int64_t params = 0;                     // learnable parameters of the built graph
  double gmacs = 0;                       // multiply-accumulates per image, 1e9
  int64_t anchors = 0;                    // (s/8)² + (s/16)² + (s/32)²
};

// Every detector, in a stable order: three backbones × input sizes 320, 416 and 640.
const std::vector<DetectorInfo>& DetectorCatalog();
// NOT_FOUND for an unknown name, naming the closest.
absl::StatusOr<const DetectorInfo*> FindDetector(std::string_view name);

// Builds the detector `name`. Classes: `num_classes` when nonzero, else BuildOptions::num_classes
// when it is not its default (1000), else the catalog's 80. input_size (a multiple of 32)
// replaces the catalog's when nonzero.
absl::StatusOr<engine::Graph> BuildDetector(std::string_view name, const BuildOptions& opts = {},
                                            int64_t num_classes = 0);

}  // namespace visionserve::models
