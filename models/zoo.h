#pragma once

// Builds engine graphs for the catalog's models. Each graph is structurally identical to the
// torchvision 0.14 model of the same name: same layers, same parameter names (state_dict keys)
// and shapes, so real torchvision weights load into it by name. Inference semantics: dropout and
// stochastic depth are identities, BatchNorm uses running statistics, and there is no softmax.
//
// Graph contract:
//   - one input named "input", batch-free NHWC dims {input_size, input_size, 3}, expecting the
//     normalised image (ModelInfo::mean/std) of the catalog's preprocessing;
//   - one output named "logits", dims {1, 1, num_classes};
//   - ops as torchvision composes them, unfused (Conv2D, BatchNorm, Activation, Add, ...);
//     engine passes fuse them later.
//
// Parameter layouts follow torch: conv weights OIHW, linear weights [out, in], BatchNorm
// weight/bias/running_mean/running_var. Two documented representation choices:
//   - ConvNeXt's block linears (block.3, block.5) act per pixel on NHWC maps, so they are 1×1
//     Conv2D nodes; their Param::shape is torch's Linear shape [out, in] (same memory layout as
//     [out, in, 1, 1]).
//   - ConvNeXt's layer_scale is a ChannelScale node whose Param::shape is torch's [C, 1, 1].
//
// Adding a variant of an existing family is one catalog line (models/catalog.cc); adding a
// family is an ArchParams alternative (models/arch.h) plus its BuildFamily overload
// (models/builders.h).

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/graph.h"

namespace visionserve::models {

struct BuildOptions {
  // Size of the classifier's output (torchvision's num_classes).
  int64_t num_classes = 1000;
  // Square input resolution in pixels; 0 selects the catalog's input_size. Accepted: [32, 2048].
  int input_size = 0;
  // Fill every parameter with InitSyntheticWeights (models/synthetic_weights.h). When false the
  // params are left empty (sized by shape only) for a weights loader to fill; Validate() fails
  // until they are.
  bool synthetic_weights = true;
  uint64_t seed = 0;  // synthetic weights' seed
};

// Builds the model `name` (see Catalog()). NOT_FOUND for an unknown name (naming the closest
// ones), INVALID_ARGUMENT for num_classes < 1 or an input_size out of range.
absl::StatusOr<engine::Graph> BuildModel(std::string_view name, const BuildOptions& opts = {});

// Smallest and largest input_size BuildModel accepts.
inline constexpr int kMinInputSize = 32;
inline constexpr int kMaxInputSize = 2048;

}  // namespace visionserve::models
