#pragma once

// Model configurations: parsed from a repository folder of protobuf text files (see
// proto/visionserve/v1/model_config.proto) or the embedded default set, then resolved against
// the zoo catalog into a ModelSpec with every default filled in.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model_config.pb.h"
#include "models/catalog.h"
#include "server/batching/batch_queue.h"
#include "server/policy/router.h"

namespace visionserve::repository {

// Everything the server needs to load and serve one model, defaults resolved.
struct ModelSpec {
  std::string name;
  const models::ModelInfo* info = nullptr;  // zoo variant
  int64_t version = 1;
  uint64_t seed = 0;
  std::string weights_path;    // ONNX file whose weights load; empty: synthetic from seed
  std::string weights_sha256;  // its hash at resolve time
  int input_size = 224;
  int num_classes = 1000;
  std::vector<std::string> labels;  // num_classes names
  std::string labels_source;        // "imagenet-1k (built in)" or the file's path
  // Preprocessing (torchvision's Resize(resize_size) -> CenterCrop(crop = input_size)).
  int resize_size = 256;
  bool bicubic = false;
  std::array<float, 3> mean{}, stddev{};
  batching::BatchingOptions batching;
};

// The embedded default set: regnet_y_400mf, efficientnet_b0 and convnext_tiny with synthetic
// weights; the first is the default model.
std::vector<v1::ModelConfig> DefaultConfigs();

// Reads every `*.pbtxt` file in `dir` (but policies.pbtxt) and every `*/config.pbtxt` one
// level down. A model's
// name defaults to its file (or folder) name. Errors name the file and the parse error;
// duplicate names are INVALID_ARGUMENT; an empty folder is NOT_FOUND.
absl::StatusOr<std::vector<v1::ModelConfig>> ReadRepository(const std::string& dir);

// Parses one config from text (for tests and ReadRepository).
absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& text,
                                                 const std::string& origin);

// Resolves a config: looks up the variant, fills defaults, validates ranges, loads labels.
// Errors are INVALID_ARGUMENT / NOT_FOUND naming the model and the field.
absl::StatusOr<ModelSpec> Resolve(const v1::ModelConfig& config);

// Routing policies: the built-in ones plus `<dir>/policies.pbtxt` when present.
struct PolicyTable {
  std::vector<policy::Policy> policies;
  std::string default_policy;  // empty: requests without a target go to the default model
  const policy::Policy* Find(const std::string& name) const;
};
// `dir` empty or without policies.pbtxt: BuiltinPolicies(). Errors name the file and field.
absl::StatusOr<PolicyTable> ReadPolicies(const std::string& dir);
absl::StatusOr<policy::Policy> ToPolicy(const v1::PolicyConfig& config);

}  // namespace visionserve::repository
