#include "models/zoo.h"

#include <string>
#include <variant>

#include "absl/strings/str_cat.h"
#include "models/builders.h"
#include "models/catalog.h"
#include "models/synthetic_weights.h"

namespace visionserve::models {

namespace {

// Bounds the classifier so a typo cannot request gigabytes of synthetic weights.
constexpr int64_t kMaxNumClasses = 100000;

}  // namespace

absl::StatusOr<engine::Graph> BuildModel(std::string_view name, const BuildOptions& opts) {
  absl::StatusOr<const ModelInfo*> info = FindModel(name);
  if (!info.ok()) return info.status();
  if (opts.num_classes < 1 || opts.num_classes > kMaxNumClasses) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes must be in [1, ", kMaxNumClasses, "], got ", opts.num_classes));
  }
  const int size = opts.input_size == 0 ? (*info)->input_size : opts.input_size;
  if (size < kMinInputSize || size > kMaxInputSize) {
    return absl::InvalidArgumentError(absl::StrCat("input_size must be in [", kMinInputSize, ", ",
                                                   kMaxInputSize, "], got ", size));
  }
  const internal::BuildSpec spec{size, opts.num_classes};
  // The family table: one BuildFamily overload per ArchParams alternative.
  absl::StatusOr<engine::Graph> graph = std::visit(
      [&](const auto& params) { return internal::BuildFamily(params, spec); }, (*info)->arch);
  if (!graph.ok()) return graph.status();
  if (opts.synthetic_weights) InitSyntheticWeights(*graph, opts.seed);
  return graph;
}

}  // namespace visionserve::models
