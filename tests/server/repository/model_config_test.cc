#include "server/repository/model_config.h"

#include <unistd.h>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "engine/executor.h"
#include "gtest/gtest.h"
#include "models/onnx.h"
#include "models/zoo.h"
#include "server/api/status.h"
#include "server/repository/served_model.h"

namespace visionserve::repository {
namespace {

namespace fs = std::filesystem;

v1::ModelConfig Parse(const std::string& text) {
  auto c = ParseModelConfig(text, "test");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : v1::ModelConfig();
}

TEST(ModelConfigTest, DefaultsComeFromTheCatalog) {
  auto spec = Resolve(Parse("name: \"b3\" variant: \"efficientnet_b3\""));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->input_size, 300);
  EXPECT_EQ(spec->resize_size, 320);
  EXPECT_TRUE(spec->bicubic);
  EXPECT_EQ(spec->version, 1);
  EXPECT_EQ(spec->num_classes, 1000);
  ASSERT_EQ(spec->labels.size(), 1000u);
  EXPECT_EQ(spec->labels[0], "tench");
  EXPECT_EQ(spec->batching.max_batch_size, 32);
  EXPECT_EQ(spec->batching.max_queue_delay_us, 2000);
}

TEST(ModelConfigTest, OverridesAreApplied) {
  auto spec = Resolve(Parse(R"pb(
    name: "x"
    variant: "regnet_y_400mf"
    version: 4
    input_size: 160
    batching {
      max_batch_size: 8
      preferred_batch_sizes: [ 4, 8 ]
      instances: 2
    }
    preprocessing {
      interpolation: "bicubic"
      mean: [ 0, 0, 0 ]
      std: [ 1, 1, 1 ]
    }
  )pb"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->version, 4);
  EXPECT_EQ(spec->input_size, 160);
  EXPECT_EQ(spec->resize_size, 165);  // the catalog's 232/224 ratio at 160, truncated
  EXPECT_TRUE(spec->bicubic);
  EXPECT_EQ(spec->mean[1], 0);
  EXPECT_EQ(spec->stddev[2], 1);
  EXPECT_EQ(spec->batching.instances, 2);
  EXPECT_EQ(spec->batching.preferred_batch_sizes, (std::vector<int>{4, 8}));
  EXPECT_EQ(spec->batching.max_queue_delay_us, 2000);  // unset: the default
  auto no_wait =
      Resolve(Parse("name: \"x\" variant: \"resnet50\" batching { max_queue_delay_us: 0 }"));
  ASSERT_TRUE(no_wait.ok()) << no_wait.status();
  EXPECT_EQ(no_wait->batching.max_queue_delay_us, 0);  // an explicit 0 means no waiting
}

TEST(ModelConfigTest, ErrorsNameTheModelAndTheField) {
  struct Case {
    std::string text;
    absl::StatusCode code;
    std::string part;
  };
  const std::vector<Case> cases = {
      {"name: \"a\" variant: \"resnet9000\"", absl::StatusCode::kNotFound, "resnet9000"},
      {"name: \"a\"", absl::StatusCode::kInvalidArgument, "set a zoo variant or an onnx file"},
      {"name: \"a b\" variant: \"resnet50\"", absl::StatusCode::kInvalidArgument, "names may"},
      {"name: \"a\" variant: \"resnet50\" input_size: 4096", absl::StatusCode::kInvalidArgument,
       "input_size 4096"},
      {"name: \"a\" variant: \"resnet50\" batching { max_batch_size: 1000 }",
       absl::StatusCode::kInvalidArgument, "above 256"},
      {"name: \"a\" variant: \"resnet50\" batching { max_batch_size: 4 preferred_batch_sizes: 8 }",
       absl::StatusCode::kInvalidArgument, "preferred batch size 8"},
      {"name: \"a\" variant: \"resnet50\" preprocessing { interpolation: \"nearest\" }",
       absl::StatusCode::kInvalidArgument, "nearest"},
      {"name: \"a\" variant: \"resnet50\" preprocessing { mean: [1, 2] std: [1, 1, 1] }",
       absl::StatusCode::kInvalidArgument, "3 values"},
      {"name: \"a\" variant: \"resnet50\" preprocessing { crop_size: 100 }",
       absl::StatusCode::kInvalidArgument, "crop_size"},
      {"name: \"a\" variant: \"resnet50\" num_classes: 10 labels_file: \"/nonexistent/labels\"",
       absl::StatusCode::kNotFound, "/nonexistent/labels"},
  };
  for (const auto& c : cases) {
    auto spec = Resolve(Parse(c.text));
    ASSERT_FALSE(spec.ok()) << c.text;
    EXPECT_EQ(spec.status().code(), c.code) << c.text << ": " << spec.status();
    EXPECT_NE(spec.status().message().find(c.part), std::string::npos) << spec.status();
  }
  EXPECT_EQ(ParseModelConfig("variant: 3", "f.pbtxt").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ParseModelConfig("nope: 1", "f.pbtxt").status().message().find("f.pbtxt"),
            std::string::npos);
}

TEST(ModelConfigTest, LabelsFileMustMatchTheClassCount) {
  const fs::path f = fs::temp_directory_path() / ("labels_" + std::to_string(getpid()));
  std::ofstream(f) << "cat\ndog\r\nbird\n";
  auto ok = Resolve(Parse("name: \"a\" variant: \"resnet50\" num_classes: 3 labels_file: \"" +
                          f.string() + "\""));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->labels, (std::vector<std::string>{"cat", "dog", "bird"}));
  auto bad = Resolve(Parse("name: \"a\" variant: \"resnet50\" num_classes: 4 labels_file: \"" +
                           f.string() + "\""));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  fs::remove(f);
}

TEST(ModelConfigTest, ReadsARepositoryFolder) {
  const fs::path dir = fs::temp_directory_path() / ("repo_" + std::to_string(getpid()));
  fs::create_directories(dir / "nested");
  EXPECT_EQ(ReadRepository(dir.string()).status().code(), absl::StatusCode::kNotFound);
  std::ofstream(dir / "a.pbtxt") << "variant: \"resnet50\"";
  std::ofstream(dir / "nested" / "config.pbtxt") << "variant: \"mobilenet_v2\"";
  std::ofstream(dir / "notes.txt") << "ignored";
  auto configs = ReadRepository(dir.string());
  ASSERT_TRUE(configs.ok()) << configs.status();
  ASSERT_EQ(configs->size(), 2u);
  EXPECT_EQ((*configs)[0].name(), "a");
  EXPECT_EQ((*configs)[1].name(), "nested");
  std::ofstream(dir / "b.pbtxt") << "name: \"a\" variant: \"resnet50\"";
  EXPECT_NE(ReadRepository(dir.string()).status().message().find("used twice"), std::string::npos);
  EXPECT_EQ(ReadRepository((dir / "missing").string()).status().code(),
            absl::StatusCode::kNotFound);
  fs::remove_all(dir);
}

TEST(ModelConfigTest, AnOnnxFileIsServedAsTheModel) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("repo_onnx_model_", getpid());
  fs::create_directories(dir);
  auto source = models::BuildModel("mobilenet_v3_small", {.input_size = 96, .seed = 3});
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(models::ExportOnnxFile(*source, (dir / "mine.onnx").string()).ok());
  std::ofstream(dir / "mine.pbtxt") << "onnx: \"mine.onnx\" batching { max_batch_size: 4 }";
  auto configs = ReadRepository(dir.string());
  ASSERT_TRUE(configs.ok()) << configs.status();
  auto spec = Resolve((*configs)[0]);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->task, ModelTask::kClassify);
  EXPECT_EQ(spec->variant, "mine.onnx");
  EXPECT_EQ(spec->family, "onnx");
  EXPECT_EQ(spec->input_size, 96);
  EXPECT_EQ(spec->num_classes, 1000);
  EXPECT_EQ(spec->resize_size, 96 * 256 / 224);
  EXPECT_EQ(spec->labels_source, "imagenet-1k (built in)");
  EXPECT_EQ(spec->params, source->ParameterCount());
  EXPECT_GT(spec->gmacs, 0);
  ServedModel model(*spec);
  EXPECT_NE(model.weights().find("mine.onnx (sha256 "), std::string::npos) << model.weights();
  ASSERT_TRUE(model.Load(std::make_shared<engine::ThreadPool>(1)).ok());
  EXPECT_EQ(model.state(), ModelState::kReady);

  auto both = Resolve(Parse("name: \"b\" variant: \"resnet50\" onnx: \"x.onnx\""));
  EXPECT_EQ(both.status().code(), absl::StatusCode::kInvalidArgument) << both.status();
  auto missing = Resolve(Parse("name: \"m\" onnx: \"/nonexistent.onnx\""));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_NE(missing.status().message().find("model \"m\": onnx:"), std::string::npos)
      << missing.status();
  fs::remove_all(dir);
}

TEST(ModelConfigTest, WeightsLoadFromAnOnnxFileBesideTheConfig) {
  const fs::path dir = fs::temp_directory_path() / ("repo_onnx_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto source = models::BuildModel("mobilenet_v3_small", {.input_size = 64, .seed = 5});
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(models::ExportOnnxFile(*source, (dir / "mnv3.onnx").string()).ok());
  auto wrong = models::BuildModel("mobilenet_v2", {.input_size = 64});
  ASSERT_TRUE(wrong.ok());
  ASSERT_TRUE(models::ExportOnnxFile(*wrong, (dir / "mnv2.onnx").string()).ok());
  std::ofstream(dir / "good.pbtxt")
      << "variant: \"mobilenet_v3_small\" input_size: 64 weights: \"mnv3.onnx\"";
  std::ofstream(dir / "wrong.pbtxt")
      << "variant: \"mobilenet_v3_small\" input_size: 64 weights: \"mnv2.onnx\"";
  auto configs = ReadRepository(dir.string());
  ASSERT_TRUE(configs.ok()) << configs.status();
  ASSERT_EQ(configs->size(), 2u);
  EXPECT_EQ((*configs)[0].weights(), (dir / "mnv3.onnx").string());  // relative to the config

  auto spec = Resolve((*configs)[0]);
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto sha = models::Sha256OfFile((dir / "mnv3.onnx").string());
  ASSERT_TRUE(sha.ok());
  EXPECT_EQ(spec->weights_sha256, *sha);
  auto pool = std::make_shared<engine::ThreadPool>(1);
  ServedModel good(*spec);
  EXPECT_EQ(good.weights(), (dir / "mnv3.onnx").string() + " (sha256 " + *sha + ")");
  ASSERT_TRUE(good.Load(pool).ok());
  EXPECT_EQ(good.state(), ModelState::kReady);

  auto wrong_spec = Resolve((*configs)[1]);
  ASSERT_TRUE(wrong_spec.ok()) << wrong_spec.status();
  ServedModel bad(*wrong_spec);
  absl::Status s = bad.Load(pool);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("is not a mobilenet_v3_small"), std::string::npos) << s;
  EXPECT_EQ(bad.state(), ModelState::kFailed);

  auto missing = Resolve(Parse("name: \"m\" variant: \"resnet50\" weights: \"/nonexistent.onnx\""));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("model \"m\": weights:"), std::string::npos)
      << missing.status();
  fs::remove_all(dir);
}

TEST(StatusMappingTest, EveryCodeMapsToTheSameGrpcCodeWithItsMessage) {
  EXPECT_TRUE(api::ToGrpcStatus(absl::OkStatus()).ok());
  for (int c = 1; c <= 16; ++c) {
    const absl::Status s(static_cast<absl::StatusCode>(c), "why");
    const grpc::Status g = api::ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), c);
    EXPECT_EQ(g.error_message(), "why");
  }
  EXPECT_EQ(api::ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(99), "x")).error_code(),
            grpc::StatusCode::UNKNOWN);
}

TEST(DefaultConfigsTest, AreTheFourDocumentedModels) {
  const auto configs = DefaultConfigs();
  ASSERT_EQ(configs.size(), 4u);
  EXPECT_EQ(configs[0].variant(), "regnet_y_400mf");
  EXPECT_EQ(configs[1].variant(), "efficientnet_b0");
  EXPECT_EQ(configs[2].variant(), "convnext_tiny");
  EXPECT_EQ(configs[3].variant(), "det_regnet_y_400mf_416");
  for (const auto& c : configs) EXPECT_TRUE(Resolve(c).ok());
  EXPECT_EQ(Resolve(configs[0])->task, ModelTask::kClassify);
  EXPECT_EQ(Resolve(configs[3])->task, ModelTask::kDetect);
}

TEST(ResolveTest, DetectorsGetCocoLabelsLetterboxAndTheirBackbonesFacts) {
  auto spec = Resolve(*ParseModelConfig("name: \"d\" variant: \"det_efficientnet_b0_320\"", "t"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->task, ModelTask::kDetect);
  EXPECT_EQ(spec->num_classes, 80);
  EXPECT_EQ(spec->labels_source, "coco-80 (built in)");
  EXPECT_EQ(spec->labels[0], "person");
  EXPECT_EQ(spec->input_size, 320);
  EXPECT_EQ(spec->num_anchors, 40 * 40 + 20 * 20 + 10 * 10);
  EXPECT_EQ(spec->family, "efficientnet");
  EXPECT_NEAR(spec->top1, 77.692, 1e-6);
  EXPECT_NE(spec->top1_source.find("proxy"), std::string::npos);
  EXPECT_EQ(spec->resize_size, 0);
  EXPECT_EQ(spec->mean, (std::array<float, 3>{0, 0, 0}));
  EXPECT_EQ(spec->stddev, (std::array<float, 3>{1, 1, 1}));

  auto custom = Resolve(*ParseModelConfig(
      "name: \"d\" variant: \"det_efficientnet_b0_320\" input_size: 256 num_classes: 3", "t"));
  ASSERT_TRUE(custom.ok()) << custom.status();
  EXPECT_EQ(custom->num_anchors, 32 * 32 + 16 * 16 + 8 * 8);
  EXPECT_EQ(custom->labels, (std::vector<std::string>{"class_0", "class_1", "class_2"}));

  for (const char* bad : {"input_size: 300", "preprocessing { resize_size: 400 }",
                          "weights: \"x.onnx\"", "num_classes: 20000"}) {
    auto r = Resolve(*ParseModelConfig(
        absl::StrCat("name: \"d\" variant: \"det_efficientnet_b0_320\" ", bad), "t"));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad << ": " << r.status();
  }
  auto typo = Resolve(*ParseModelConfig("name: \"d\" variant: \"det_regnet_320\"", "t"));
  EXPECT_EQ(typo.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(typo.status().message().find("det_regnet_y_400mf_320"), std::string::npos)
      << typo.status();
}

}  // namespace
}  // namespace visionserve::repository
