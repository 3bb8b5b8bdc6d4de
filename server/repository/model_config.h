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
#include "models/detector.h"
#include "server/batching/batch_queue.h"
#include "server/policy/router.h"

namespace visionserve::repository {

// What a model is served for: the RPC that reaches it.
enum class ModelTask { kClassify, kDetect };
const char* ModelTaskName(ModelTask t);  // "classify", "detect"

// Everything the server needs to load and serve one model, defaults resolved.
struct ModelSpec {
  std::string name;
  ModelTask task = ModelTask::kClassify;
  const models::ModelInfo* info = nullptr;         // zoo classifier (task kClassify)
  const models::DetectorInfo* detector = nullptr;  // zoo detector (task kDetect)
  // The variant's catalog facts, whichever kind it is.
  std::string variant;  // catalog name
  std::string family;   // classifiers: their family; detectors: their backbone's
  double top1 = 0;      // ImageNet top-1 %; detectors: their backbone's (a proxy, see source)
  std::string top1_source;
  int64_t params = 0;
  double gmacs = 0;         // per image at input_size
  int64_t num_anchors = 0;  // detectors: candidate boxes per image
  int64_t version = 1;
  uint64_t seed = 0;
  std::string weights_path;    // ONNX file whose weights load; empty: synthetic from seed
  std::string weights_sha256;  // its hash at resolve time
  std::string onnx_path;       // ONNX model served instead of a zoo variant (info, detector null)
  std::string onnx_sha256;
  int input_size = 224;
  int num_classes = 1000;
  std::vector<std::string> labels;  // num_classes names
  std::string labels_source;        // "imagenet-1k (built in)" or the file's path
  // Classifiers: torchvision's Resize(resize_size) -> CenterCrop(crop = input_size) ->
  // Normalize(mean, stddev). Detectors: letterbox to input_size, mean 0, stddev 1 (resize_size
  // 0).
  int resize_size = 256;
  bool bicubic = false;
  std::array<float, 3> mean{}, stddev{};
  batching::BatchingOptions batching;
};

// The embedded default set: the classifiers regnet_y_400mf, efficientnet_b0 and convnext_tiny
// and the detector det_regnet_y_400mf_416, with synthetic weights; the first is the default
// model (of Classify; the detector is Detect's).
std::vector<v1::ModelConfig> DefaultConfigs();

// Reads every `*.pbtxt` file in `dir` (but policies.pbtxt) and every `*/config.pbtxt` one
// level down. A model's
// name defaults to its file (or folder) name. Errors name the file and the parse error;
// duplicate names are INVALID_ARGUMENT; an empty folder is NOT_FOUND.
absl::StatusOr<std::vector<v1::ModelConfig>> ReadRepository(const std::string& dir);

// Parses one config from text (for tests and ReadRepository).
absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& text,
                                                 const std::string& origin);

// Resolves a config: looks up the variant (classifier or detector), fills defaults, validates
// ranges, loads labels.
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
