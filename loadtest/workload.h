#pragma once

// What visionload sends: the request bodies, prebuilt once before the run.
//
// Each ClassifyRequest is sent as three serialized pieces that concatenate into one valid
// message (protobuf allows fields in any order): the request_id (per call), the target part
// (model / policy / inline policy, top_k, priority; one per mix entry) and the images part (one
// per image group). Calls therefore copy no image bytes, and the request pool costs about the
// size of its distinct images.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "vision_service.pb.h"

namespace visionserve::loadtest {

// One entry of the weighted target mix.
struct Target {
  enum class Kind { kDefault, kModel, kPolicy, kInline };
  Kind kind = Kind::kDefault;
  std::string name;  // model or policy name
  v1::InlinePolicy inline_policy;
  double weight = 1;
  std::string spec;  // as written, for reports
};

// Entries separated by ';', each "SPEC" or "SPEC@WEIGHT" (weight > 0, default 1):
//   default                          the server's default model / policy
//   model:NAME                       a configured model
//   policy:NAME                      a named policy (realtime, balanced, best, ...)
//   inline:KEY=VALUE,...             an inline policy; keys budget_ms, min_top1,
//                                    objective (most_accurate|fastest),
//                                    on_miss (reject|serve_fastest), families (a|b|c)
// e.g. "model:convnext_tiny@1;policy:balanced@3;inline:budget_ms=50,objective=fastest".
absl::StatusOr<std::vector<Target>> ParseMix(absl::string_view spec);

enum class Encoding { kJpeg, kPng, kRawU8, kRawF32, kRawF16 };
absl::StatusOr<Encoding> ParseEncoding(absl::string_view name);  // jpeg, png, u8, f32, f16
const char* EncodingName(Encoding e);

struct WorkloadOptions {
  // "synthetic", or a folder whose .jpg/.jpeg/.png files are sent as they are (sorted by name).
  std::string input = "synthetic";
  // Synthetic images: size, how they are sent, how many distinct ones. kRawF32 (kRawF16) sends an
  // already preprocessed FLOAT32 (FLOAT16) tensor and needs width == height == the model's input
  // size.
  int width = 224, height = 224;
  Encoding encoding = Encoding::kJpeg;
  int distinct_images = 8;
  int jpeg_quality = 90;
  int images_per_request = 1;
  std::vector<Target> targets;  // empty: the server's default
  int top_k = 0;                // 0: the server's default (5)
  int priority = 0;
  uint64_t seed = 1;
};

class Workload {
 public:
  static absl::StatusOr<std::unique_ptr<Workload>> Create(const WorkloadOptions& options);

  // The parts of one request; they stay valid as long as the Workload.
  struct Request {
    int target = 0;  // index into targets()
    absl::string_view target_part, images_part;
    int images = 1;
  };
  // Request number `seq`: the target drawn by weight from a hash of (seed, seq), the image groups
  // in turn. Deterministic and thread-safe.
  Request Pick(uint64_t seq) const;

  // The serialized request_id field, to put in front of the parts.
  static std::string RequestIdPart(absl::string_view request_id);

  const std::vector<Target>& targets() const { return targets_; }
  int images_per_request() const { return images_per_request_; }
  double mean_request_bytes() const;
  std::string Describe() const;  // one line for reports

 private:
  Workload() = default;

  std::vector<Target> targets_;
  std::vector<double> cumulative_weight_;  // normalized to end at 1
  std::vector<std::string> target_parts_;
  std::vector<std::string> image_parts_;
  int images_per_request_ = 1;
  uint64_t seed_ = 1;
  std::string description_;
};

// Synthetic RGB pixels (smooth gradients plus noise: compressible like a photo, never constant).
std::vector<uint8_t> SyntheticPixels(int width, int height, uint32_t seed);
absl::StatusOr<std::string> EncodeJpeg(const std::vector<uint8_t>& rgb, int width, int height,
                                       int quality);
absl::StatusOr<std::string> EncodePng(const std::vector<uint8_t>& rgb, int width, int height);

}  // namespace visionserve::loadtest
