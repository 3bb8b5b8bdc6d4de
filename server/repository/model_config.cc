#include "server/repository/model_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "models/labels.h"
#include "models/onnx.h"

namespace visionserve::repository {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxConfigBytes = 1 << 20;

absl::StatusOr<std::string> ReadSmallFile(const fs::path& path, int64_t limit) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec)
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string(), ": ", ec.message()));
  if (static_cast<int64_t>(size) > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is ", size, " bytes, more than the limit of ", limit));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof())
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  return ss.str();
}

// Collects parser errors with line and column.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty())
      first_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

}  // namespace

std::vector<v1::ModelConfig> DefaultConfigs() {
  std::vector<v1::ModelConfig> out;
  for (const char* variant :
       {"regnet_y_400mf", "efficientnet_b0", "convnext_tiny", "det_regnet_y_400mf_416"}) {
    v1::ModelConfig c;
    c.set_name(variant);
    c.set_variant(variant);
    out.push_back(std::move(c));
  }
  // The detector gains nothing from batches above 8 (its activations leave the cache), and each
  // queued image holds 3.3 MB of input and output: cap its batches there.
  out.back().mutable_batching()->set_max_batch_size(8);
  return out;
}

absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& text,
                                                 const std::string& origin) {
  v1::ModelConfig config;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot parse model config ", origin, ": ", errors.first()));
  }
  return config;
}

absl::StatusOr<std::vector<v1::ModelConfig>> ReadRepository(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("model repository ", dir, " is not a folder"));
  }
  std::vector<std::pair<fs::path, std::string>> files;  // path, default name
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".pbtxt" &&
        entry.path().filename() != "policies.pbtxt") {
      files.emplace_back(entry.path(), entry.path().stem().string());
    } else if (entry.is_directory() && fs::is_regular_file(entry.path() / "config.pbtxt")) {
      files.emplace_back(entry.path() / "config.pbtxt", entry.path().filename().string());
    }
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  if (files.empty()) {
    return absl::NotFoundError(
        absl::StrCat("model repository ", dir, " has no *.pbtxt or */config.pbtxt model configs"));
  }
  std::sort(files.begin(), files.end());
  std::vector<v1::ModelConfig> out;
  std::set<std::string> names;
  for (const auto& [path, default_name] : files) {
    auto text = ReadSmallFile(path, kMaxConfigBytes);
    if (!text.ok()) return text.status();
    auto config = ParseModelConfig(*text, path.string());
    if (!config.ok()) return config.status();
    if (config->name().empty()) config->set_name(default_name);
    if (!config->weights().empty() && fs::path(config->weights()).is_relative()) {
      config->set_weights((path.parent_path() / config->weights()).string());
    }
    if (!config->onnx().empty() && fs::path(config->onnx()).is_relative()) {
      config->set_onnx((path.parent_path() / config->onnx()).string());
    }
    if (!names.insert(config->name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("model name \"", config->name(), "\" is used twice (", path.string(), ")"));
    }
    out.push_back(std::move(*config));
  }
  return out;
}

namespace {
absl::StatusOr<ModelSpec> ResolveBatching(const v1::ModelConfig& c, const std::string& who,
                                          ModelSpec s);
absl::Status ResolveLabels(const v1::ModelConfig& c, const std::string& who, ModelSpec& s);

// Detectors letterbox to their input size and scale to [0, 1], as YOLO models are trained: a
// classifier's preprocessing block is an error.
absl::Status ResolveDetectorPreprocessing(const v1::ModelConfig& c, const std::string& who,
                                          ModelSpec& s) {
  if (c.preprocessing().ByteSizeLong() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(who,
                     "preprocessing applies to classifiers; detectors letterbox to input_size and "
                     "scale to [0, 1]"));
  }
  s.resize_size = 0;
  s.mean = {0, 0, 0};
  s.stddev = {1, 1, 1};
  return absl::OkStatus();
}
absl::Status ResolveClassifierPreprocessing(const v1::ModelConfig& c, const std::string& who,
                                            int catalog_input, int catalog_resize,
                                            const std::string& catalog_interp,
                                            const std::array<float, 3>& catalog_mean,
                                            const std::array<float, 3>& catalog_std, ModelSpec& s);

// A model served from an ONNX file: the file says what it is.
absl::StatusOr<ModelSpec> ResolveOnnx(const v1::ModelConfig& c, const std::string& who) {
  if (!c.variant().empty() || !c.weights().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, "onnx serves a file as the model; variant and weights are for zoo models"));
  }
  models::OnnxImportOptions opts;
  opts.input_size = c.input_size();
  auto imported = models::ImportOnnxFile(c.onnx(), opts);
  if (!imported.ok()) {
    return absl::Status(imported.status().code(),
                        absl::StrCat(who, "onnx: ", imported.status().message()));
  }
  const models::OnnxModelInfo& info = imported->info;
  ModelSpec s;
  s.name = c.name();
  s.task = info.detector ? ModelTask::kDetect : ModelTask::kClassify;
  s.variant = fs::path(c.onnx()).filename().string();
  s.family = "onnx";
  s.top1_source = "unknown (an ONNX file)";
  s.onnx_path = c.onnx();
  s.onnx_sha256 = info.sha256;
  s.version = c.version() > 0 ? c.version() : 1;
  if (info.height != info.width || info.channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat(who, "onnx: the input is ", info.channels, "×",
                                                   info.height, "×", info.width,
                                                   "; served models take square RGB images"));
  }
  s.input_size = static_cast<int>(info.height);
  s.num_classes = static_cast<int>(info.num_classes);
  if (c.num_classes() != 0 && c.num_classes() != s.num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, "num_classes ", c.num_classes(), " but the file has ", s.num_classes));
  }
  s.num_anchors = info.num_anchors;
  s.params = imported->graph.ParameterCount();
  s.gmacs = static_cast<double>(imported->graph.Macs()) * 1e-9;
  if (absl::Status st = ResolveLabels(c, who, s); !st.ok()) return st;
  if (s.task == ModelTask::kDetect) {
    if (absl::Status st = ResolveDetectorPreprocessing(c, who, s); !st.ok()) return st;
  } else {
    // torchvision's ImageNet recipe unless the config says otherwise.
    if (absl::Status st = ResolveClassifierPreprocessing(
            c, who, s.input_size, s.input_size * 256 / 224, "bilinear", {0.485f, 0.456f, 0.406f},
            {0.229f, 0.224f, 0.225f}, s);
        !st.ok()) {
      return st;
    }
  }
  return ResolveBatching(c, who, std::move(s));
}
}  // namespace

absl::StatusOr<ModelSpec> Resolve(const v1::ModelConfig& c) {
  const std::string who = absl::StrCat("model \"", c.name(), "\": ");
  if (c.name().empty()) return absl::InvalidArgumentError("model config without a name");
  for (char ch : c.name()) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.')) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, "names may use letters, digits, '_', '-' and '.'"));
    }
  }
  if (!c.onnx().empty()) return ResolveOnnx(c, who);
  if (c.variant().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(who, "set a zoo variant or an onnx file"));
  }
  ModelSpec s;
  s.name = c.name();
  if (auto det = models::FindDetector(c.variant()); det.ok()) {
    s.task = ModelTask::kDetect;
    s.detector = *det;
    auto backbone = models::FindModel((*det)->backbone);
    if (!backbone.ok()) return backbone.status();
    s.family = (*backbone)->family;
    s.top1 = (*backbone)->top1;
    s.top1_source = absl::StrCat("backbone ", (*backbone)->name, ": ", (*backbone)->top1_source,
                                 " (a proxy: detectors have no published accuracy here)");
    s.params = (*det)->params;
  } else {
    auto info = models::FindModel(c.variant());
    if (!info.ok()) {
      return absl::NotFoundError(absl::StrCat(who, absl::StartsWith(c.variant(), "det_")
                                                       ? det.status().message()
                                                       : info.status().message()));
    }
    s.info = *info;
    s.family = s.info->family;
    s.top1 = s.info->top1;
    s.top1_source = s.info->top1_source;
    s.params = s.info->params;
  }
  s.variant = c.variant();
  s.version = c.version() > 0 ? c.version() : 1;
  s.seed = c.seed();
  if (!c.weights().empty()) {
    if (s.task == ModelTask::kDetect) {
      return absl::InvalidArgumentError(absl::StrCat(
          who,
          "weights: ONNX weights load into zoo classifiers only; detectors use synthetic "
          "weights from `seed`"));
    }
    auto sha = models::Sha256OfFile(c.weights());
    if (!sha.ok()) {
      return absl::Status(sha.status().code(),
                          absl::StrCat(who, "weights: ", sha.status().message()));
    }
    s.weights_path = c.weights();
    s.weights_sha256 = *sha;
  }
  const int catalog_size = s.detector ? s.detector->input_size : s.info->input_size;
  s.input_size = c.input_size() > 0 ? c.input_size() : catalog_size;
  if (s.input_size < 32 || s.input_size > 2048) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, "input_size ", s.input_size, " is outside 32..2048"));
  }
  if (s.detector && (s.input_size % 32 != 0 || s.input_size < 64)) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, "input_size ", s.input_size, " of a detector must be a multiple of 32, at least 64"));
  }
  s.num_classes = c.num_classes() > 0     ? c.num_classes()
                  : s.detector != nullptr ? static_cast<int>(s.detector->num_classes)
                                          : s.info->num_classes;
  if (s.num_classes > 100000 || (s.detector && s.num_classes > 10000)) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, "num_classes ", s.num_classes, " above ", s.detector ? 10000 : 100000));
  }
  const double scale = static_cast<double>(s.input_size) * s.input_size /
                       (static_cast<double>(catalog_size) * catalog_size);
  s.gmacs = (s.detector ? s.detector->gmacs : s.info->gmacs) * scale;
  if (s.detector) {
    for (int stride : {8, 16, 32}) {
      s.num_anchors += int64_t{s.input_size / stride} * (s.input_size / stride);
    }
  }

  if (absl::Status st = ResolveLabels(c, who, s); !st.ok()) return st;
  if (s.task == ModelTask::kDetect) {
    if (absl::Status st = ResolveDetectorPreprocessing(c, who, s); !st.ok()) return st;
    return ResolveBatching(c, who, std::move(s));
  }
  if (absl::Status st =
          ResolveClassifierPreprocessing(c, who, s.info->input_size, s.info->resize_size,
                                         s.info->interpolation, s.info->mean, s.info->std, s);
      !st.ok()) {
    return st;
  }
  return ResolveBatching(c, who, std::move(s));
}

namespace {
absl::Status ResolveLabels(const v1::ModelConfig& c, const std::string& who, ModelSpec& s) {
  if (!c.labels_file().empty()) {
    auto text = ReadSmallFile(c.labels_file(), 16 << 20);
    if (!text.ok())
      return absl::Status(text.status().code(), absl::StrCat(who, text.status().message()));
    std::istringstream in(*text);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      s.labels.push_back(line);
    }
    if (static_cast<int>(s.labels.size()) != s.num_classes) {
      return absl::InvalidArgumentError(absl::StrCat(who, "labels file ", c.labels_file(), " has ",
                                                     s.labels.size(), " lines for ", s.num_classes,
                                                     " classes"));
    }
    s.labels_source = c.labels_file();
  } else if (s.num_classes == 1000 && s.task == ModelTask::kClassify) {
    for (auto l : models::kImageNet1kLabels) s.labels.emplace_back(l);
    s.labels_source = "imagenet-1k (built in)";
  } else if (s.num_classes == 80 && s.task == ModelTask::kDetect) {
    for (auto l : models::kCoco80Labels) s.labels.emplace_back(l);
    s.labels_source = "coco-80 (built in)";
  } else {
    for (int i = 0; i < s.num_classes; ++i) s.labels.push_back(absl::StrCat("class_", i));
    s.labels_source = "class_<index>";
  }

  return absl::OkStatus();
}

absl::Status ResolveClassifierPreprocessing(const v1::ModelConfig& c, const std::string& who,
                                            int catalog_input, int catalog_resize,
                                            const std::string& catalog_interp,
                                            const std::array<float, 3>& catalog_mean,
                                            const std::array<float, 3>& catalog_std, ModelSpec& s) {
  // The catalog's (scaled with a custom input size), overridable.
  const auto& p = c.preprocessing();
  s.resize_size =
      p.resize_size() > 0
          ? p.resize_size()
          : static_cast<int>(static_cast<int64_t>(catalog_resize) * s.input_size / catalog_input);
  if (p.crop_size() != 0 && p.crop_size() != s.input_size) {
    return absl::InvalidArgumentError(absl::StrCat(who, "preprocessing.crop_size ", p.crop_size(),
                                                   " must equal the input size ", s.input_size));
  }
  if (s.resize_size < s.input_size || s.resize_size > 8192) {
    return absl::InvalidArgumentError(absl::StrCat(who, "preprocessing.resize_size ", s.resize_size,
                                                   " must be within ", s.input_size, "..8192"));
  }
  const std::string interp = p.interpolation().empty() ? catalog_interp : p.interpolation();
  if (interp != "bilinear" && interp != "bicubic") {
    return absl::InvalidArgumentError(absl::StrCat(who, "preprocessing.interpolation \"", interp,
                                                   "\": use \"bilinear\" or \"bicubic\""));
  }
  s.bicubic = interp == "bicubic";
  s.mean = catalog_mean;
  s.stddev = catalog_std;
  if (p.mean_size() != 0 || p.std_size() != 0) {
    if (p.mean_size() != 3 || p.std_size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, "preprocessing.mean and .std need 3 values each"));
    }
    for (int i = 0; i < 3; ++i) {
      if (!(p.std(i) > 0)) {
        return absl::InvalidArgumentError(absl::StrCat(who, "preprocessing.std must be > 0"));
      }
      s.mean[i] = p.mean(i);
      s.stddev[i] = p.std(i);
    }
  }

  return absl::OkStatus();
}
}  // namespace

const char* ModelTaskName(ModelTask t) { return t == ModelTask::kDetect ? "detect" : "classify"; }

namespace {
absl::StatusOr<ModelSpec> ResolveBatching(const v1::ModelConfig& c, const std::string& who,
                                          ModelSpec s) {
  const auto& b = c.batching();
  batching::BatchingOptions& o = s.batching;
  if (b.max_batch_size() > 0) o.max_batch_size = b.max_batch_size();
  if (b.has_max_queue_delay_us()) o.max_queue_delay_us = b.max_queue_delay_us();
  o.preferred_batch_sizes.assign(b.preferred_batch_sizes().begin(),
                                 b.preferred_batch_sizes().end());
  if (b.max_queue_size() > 0) o.max_queue_size = b.max_queue_size();
  if (b.default_queue_timeout_us() > 0) o.default_queue_timeout_us = b.default_queue_timeout_us();
  if (b.instances() > 0) o.instances = b.instances();
  if (b.priority_levels() > 0) o.priority_levels = b.priority_levels();
  if (o.max_batch_size > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, "batching.max_batch_size ", o.max_batch_size, " is above 256"));
  }
  if (absl::Status st = o.Validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(who, "batching: ", st.message()));
  }
  return s;
}
}  // namespace

const policy::Policy* PolicyTable::Find(const std::string& name) const {
  for (const auto& p : policies) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

absl::StatusOr<policy::Policy> ToPolicy(const v1::PolicyConfig& c) {
  policy::Policy p;
  p.name = c.name();
  if (p.name.empty()) return absl::InvalidArgumentError("policy without a name");
  if (!(c.latency_budget_ms() >= 0) || c.latency_budget_ms() > 3.6e6) {
    return absl::InvalidArgumentError(absl::StrCat("policy ", p.name, ": latency_budget_ms ",
                                                   c.latency_budget_ms(), " is out of range"));
  }
  if (!(c.min_top1() >= 0 && c.min_top1() <= 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy ", p.name, ": min_top1 ", c.min_top1(), " is outside 0..100"));
  }
  p.latency_budget_ms = c.latency_budget_ms();
  p.min_top1 = c.min_top1();
  p.objective = c.objective() == v1::PolicyConfig::FASTEST ? policy::Objective::kFastest
                                                           : policy::Objective::kMostAccurate;
  p.on_miss = c.on_miss() == v1::PolicyConfig::SERVE_FASTEST ? policy::OnMiss::kServeFastest
                                                             : policy::OnMiss::kReject;
  p.families.assign(c.families().begin(), c.families().end());
  return p;
}

absl::StatusOr<PolicyTable> ReadPolicies(const std::string& dir) {
  PolicyTable table;
  table.policies = policy::BuiltinPolicies();
  if (dir.empty()) return table;
  const fs::path path = fs::path(dir) / "policies.pbtxt";
  std::error_code ec;
  if (!fs::exists(path, ec)) return table;
  auto text = ReadSmallFile(path, kMaxConfigBytes);
  if (!text.ok()) return text.status();
  v1::PolicySet set;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(*text, &set)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot parse ", path.string(), ": ", errors.first()));
  }
  for (const auto& c : set.policy()) {
    auto p = ToPolicy(c);
    if (!p.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", p.status().message()));
    }
    bool replaced = false;
    for (auto& existing : table.policies) {
      if (existing.name == p->name) {
        existing = *p;
        replaced = true;
      }
    }
    if (!replaced) table.policies.push_back(*p);
  }
  table.default_policy = set.default_policy();
  if (!table.default_policy.empty() && !table.Find(table.default_policy)) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": default_policy \"",
                                                   table.default_policy, "\" is not defined"));
  }
  return table;
}

}  // namespace visionserve::repository
