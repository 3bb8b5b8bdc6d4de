// End-to-end Detect over gRPC on 127.0.0.1: an in-process server whose detector head is set by
// hand (a GraphHook) so that the boxes it must return are known exactly, for images of odd
// aspect ratios sent as JPEG, PNG and raw tensors, one by one, batched and streamed.
//
// The hand-set head: every conv weight of the stride-32 level's last box and class layers is
// zero, so the output is their bias. Box bins 0 and 1 of every side get equal large logits: the
// expected distance is half a cell, so each stride-32 anchor's box is exactly its 32 × 32 cell.
// Class kClass gets logit kLogit (score sigmoid(kLogit)), every other class and every class of
// the other levels −30 (score ~1e-13). NMS keeps every cell (touching cells do not overlap);
// mapped back through the letterbox and clipped, the cells that show some of the image are the
// detections, and the ones entirely in the padding are dropped.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/detect/letterbox.h"
#include "server/server.h"
#include "tests/server/preprocess/test_images.h"
#include "vision_service.grpc.pb.h"

namespace visionserve {
namespace {

constexpr int kInput = 320;
constexpr int kCell = 32;
constexpr int kClass = 7;  // COCO "truck"
constexpr float kLogit = 2.0f;

absl::Status SetHead(const repository::ModelSpec& spec, engine::Graph* g) {
  if (spec.task != repository::ModelTask::kDetect) return absl::OkStatus();
  int touched = 0;
  for (engine::Param& p : g->mutable_params()) {
    const bool last_level = p.name.rfind("head.2.", 0) == 0;
    if (p.name.find(".box.2.weight") != std::string::npos ||
        p.name.find(".cls.2.weight") != std::string::npos) {
      std::fill(p.data.begin(), p.data.end(), 0.0f);
      ++touched;
    } else if (p.name.find(".box.2.bias") != std::string::npos) {
      const size_t reg_max = p.data.size() / 4;
      for (size_t i = 0; i < p.data.size(); ++i) p.data[i] = (i % reg_max) < 2 ? 40.0f : 0.0f;
      ++touched;
    } else if (p.name.find(".cls.2.bias") != std::string::npos) {
      std::fill(p.data.begin(), p.data.end(), -30.0f);
      if (last_level) p.data[kClass] = kLogit;
      ++touched;
    }
  }
  if (touched != 12) return absl::InternalError(absl::StrCat("set ", touched, " head params"));
  return absl::OkStatus();
}

struct ExpectedBox {
  float x1, y1, x2, y2;
};

// The cells of the stride-32 grid, mapped back to a width × height image; empty ones dropped.
std::vector<ExpectedBox> ExpectedBoxes(int width, int height) {
  auto g = detect::ComputeLetterbox(width, height, kInput, kInput);
  EXPECT_TRUE(g.ok());
  std::vector<ExpectedBox> out;
  for (int i = 0; i < kInput / kCell; ++i) {
    for (int j = 0; j < kInput / kCell; ++j) {
      detect::Box b{static_cast<float>(j * kCell), static_cast<float>(i * kCell),
                    static_cast<float>((j + 1) * kCell), static_cast<float>((i + 1) * kCell)};
      b = detect::ClipToImage(*g, detect::MapToOriginal(*g, b));
      if (b.x2 > b.x1 && b.y2 > b.y1) out.push_back({b.x1, b.y1, b.x2, b.y2});
    }
  }
  return out;
}

bool BoxLess(const ExpectedBox& a, const ExpectedBox& b) {
  return std::tie(a.y1, a.x1, a.y2, a.x2) < std::tie(b.y1, b.x1, b.y2, b.x2);
}

void ExpectKnownBoxes(const v1::ImageDetections& r, int width, int height) {
  EXPECT_EQ(r.image_width(), width);
  EXPECT_EQ(r.image_height(), height);
  std::vector<ExpectedBox> want = ExpectedBoxes(width, height), got;
  for (const v1::Detection& d : r.detections()) {
    EXPECT_EQ(d.class_id(), kClass);
    EXPECT_EQ(d.label(), "truck");
    EXPECT_NEAR(d.score(), 1 / (1 + std::exp(-kLogit)), 1e-5);
    got.push_back({d.box().x1(), d.box().y1(), d.box().x2(), d.box().y2()});
    EXPECT_GE(d.box().x1(), 0);
    EXPECT_GE(d.box().y1(), 0);
    EXPECT_LE(d.box().x2(), width);
    EXPECT_LE(d.box().y2(), height);
  }
  ASSERT_EQ(got.size(), want.size()) << width << "x" << height;
  std::sort(want.begin(), want.end(), BoxLess);
  std::sort(got.begin(), got.end(), BoxLess);
  // Tolerance: the head's expected distance is 0.5 − ~1e-17 cells, float32 through the decode.
  const float tol = 2e-3f * std::max(width, height) / kInput + 1e-3f;
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_NEAR(got[k].x1, want[k].x1, tol) << k;
    EXPECT_NEAR(got[k].y1, want[k].y1, tol) << k;
    EXPECT_NEAR(got[k].x2, want[k].x2, tol) << k;
    EXPECT_NEAR(got[k].y2, want[k].y2, tol) << k;
  }
}

std::vector<uint8_t> Rgb(int w, int h, uint32_t seed) {
  return preprocess::testing::RandomBytes(static_cast<size_t>(w) * h * 3, seed);
}

std::string Jpeg(int w, int h) {
  const auto bytes = preprocess::testing::EncodeJpeg(Rgb(w, h, 1), w, h, TJPF_RGB, TJSAMP_420, 90);
  return std::string(bytes.begin(), bytes.end());
}

std::string Png(int w, int h) {
  const auto bytes = preprocess::testing::EncodeRgbPng(Rgb(w, h, 2), w, h);
  return std::string(bytes.begin(), bytes.end());
}

v1::Image RawImage(int w, int h) {
  v1::Image image;
  v1::RawTensor* t = image.mutable_tensor();
  t->set_dtype(v1::RawTensor::UINT8);
  t->add_shape(h);
  t->add_shape(w);
  t->add_shape(3);
  const auto rgb = Rgb(w, h, 3);
  t->set_data(std::string(rgb.begin(), rgb.end()));
  return image;
}

class DetectE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     absl::StrCat("visionserve_detect_e2e_", getpid()));
    std::filesystem::create_directories(*dir_);
    std::ofstream(*dir_ / "det.pbtxt")
        << "variant: \"det_regnet_y_400mf_320\"\n"
           "batching { max_batch_size: 4 max_queue_delay_us: 200000 }\n";
    std::ofstream(*dir_ / "cls.pbtxt") << "variant: \"mobilenet_v3_small\" input_size: 96\n";
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.threads = 2;
    options.repository = dir_->string();
    options.graph_hook = SetHead;
    auto server = Server::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    server_->WaitLoaded();
    ASSERT_TRUE(server_->models().AllReady());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(-1);
    stub_ = v1::VisionService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials(), args));
  }
  grpc::Status Detect(const v1::DetectRequest& req, v1::DetectResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->Detect(&ctx, req, resp);
  }
  void ExpectError(const v1::DetectRequest& req, grpc::StatusCode code, const std::string& part) {
    v1::DetectResponse resp;
    grpc::Status s = Detect(req, &resp);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_NE(s.error_message().find(part), std::string::npos)
        << "message: " << s.error_message() << "\nwanted: " << part;
  }

  static std::filesystem::path* dir_;
  static Server* server_;
  std::unique_ptr<v1::VisionService::Stub> stub_;
};

std::filesystem::path* DetectE2ETest::dir_ = nullptr;
Server* DetectE2ETest::server_ = nullptr;

TEST_F(DetectE2ETest, BoxesComeBackInOriginalPixelsForOddAspectRatios) {
  v1::DetectRequest req;
  req.set_request_id("odd");
  req.set_max_detections(1000);
  req.add_images()->set_encoded(Jpeg(517, 211));  // wide: padding top and bottom
  req.add_images()->set_encoded(Png(97, 403));    // tall: padding left and right
  *req.add_images() = RawImage(1000, 999);        // almost square, shrunk
  *req.add_images() = RawImage(50, 30);           // tiny, enlarged
  v1::DetectResponse resp;
  grpc::Status s = Detect(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.request_id(), "odd");
  ASSERT_EQ(resp.results_size(), 4);
  ExpectKnownBoxes(resp.results(0), 517, 211);
  ExpectKnownBoxes(resp.results(1), 97, 403);
  ExpectKnownBoxes(resp.results(2), 1000, 999);
  ExpectKnownBoxes(resp.results(3), 50, 30);
  EXPECT_EQ(resp.served_by().model(), "det");
  EXPECT_EQ(resp.served_by().variant(), "det_regnet_y_400mf_320");
  EXPECT_EQ(resp.served_by().decision_reason(), "default model");
  for (const auto& r : resp.results()) {
    EXPECT_GE(r.timing().batch_size(), 1);
    EXPECT_GT(r.timing().compute_us(), 0);
    EXPECT_GT(r.timing().postprocess_us(), 0);
  }
  // 4 images, max batch 4, 200 ms batching delay: images of different sizes shared a batch and
  // were scattered back to their own results (all 4 at once unless preprocessing one of them
  // took longer than the delay, as under a sanitizer it may).
  EXPECT_GE(resp.timing().batch_size(), 2);
}

TEST_F(DetectE2ETest, ThresholdsFilterAndLimitsApply) {
  const std::string jpeg = Jpeg(300, 200);
  auto request = [&] {
    v1::DetectRequest req;
    req.set_model("det");
    req.add_images()->set_encoded(jpeg);
    return req;
  };
  const size_t all = ExpectedBoxes(300, 200).size();
  v1::DetectResponse resp;
  v1::DetectRequest req = request();
  ASSERT_TRUE(Detect(req, &resp).ok());
  EXPECT_EQ(resp.results(0).detections_size(), static_cast<int>(std::min<size_t>(all, 100)));

  req = request();
  req.add_class_filter(kClass);
  req.add_class_filter(0);
  ASSERT_TRUE(Detect(req, &resp).ok());
  EXPECT_EQ(resp.results(0).detections_size(), static_cast<int>(std::min<size_t>(all, 100)));

  req = request();
  req.add_class_filter(3);
  ASSERT_TRUE(Detect(req, &resp).ok());
  EXPECT_EQ(resp.results(0).detections_size(), 0);

  req = request();
  req.set_score_threshold(0.9f);  // above sigmoid(2) = 0.881
  ASSERT_TRUE(Detect(req, &resp).ok());
  EXPECT_EQ(resp.results(0).detections_size(), 0);
  req.set_score_threshold(0.85f);
  ASSERT_TRUE(Detect(req, &resp).ok());
  EXPECT_GT(resp.results(0).detections_size(), 0);

  req = request();
  req.set_max_detections(5);
  ASSERT_TRUE(Detect(req, &resp).ok());
  EXPECT_EQ(resp.results(0).detections_size(), 5);

  // An IoU limit of 0 means the default; a tiny positive one still keeps disjoint cells.
  req = request();
  req.set_iou_threshold(0.01f);
  ASSERT_TRUE(Detect(req, &resp).ok());
  EXPECT_EQ(resp.results(0).detections_size(), static_cast<int>(std::min<size_t>(all, 100)));
}

TEST_F(DetectE2ETest, BadInputsGetSpecificErrors) {
  auto one = [](const std::string& bytes) {
    v1::DetectRequest req;
    req.add_images()->set_encoded(bytes);
    return req;
  };
  const std::string jpeg = Jpeg(64, 48);
  ExpectError(v1::DetectRequest(), grpc::StatusCode::INVALID_ARGUMENT, "no images");
  ExpectError(one("not an image"), grpc::StatusCode::INVALID_ARGUMENT, "format");
  ExpectError(one(jpeg.substr(0, jpeg.size() / 3)), grpc::StatusCode::INVALID_ARGUMENT,
              "truncated or corrupt");
  v1::DetectRequest req = one(jpeg);
  req.set_model("cls");
  ExpectError(req, grpc::StatusCode::INVALID_ARGUMENT, "is a classify model");
  req.set_model("nope");
  ExpectError(req, grpc::StatusCode::NOT_FOUND, "unknown model");
  req = one(jpeg);
  req.set_score_threshold(1.5f);
  ExpectError(req, grpc::StatusCode::INVALID_ARGUMENT, "score_threshold");
  req = one(jpeg);
  req.set_iou_threshold(-0.5f);
  ExpectError(req, grpc::StatusCode::INVALID_ARGUMENT, "iou_threshold");
  req = one(jpeg);
  req.set_max_detections(5000);
  ExpectError(req, grpc::StatusCode::INVALID_ARGUMENT, "max_detections");
  req = one(jpeg);
  req.add_class_filter(80);
  ExpectError(req, grpc::StatusCode::INVALID_ARGUMENT, "class_filter id 80");
  req = one(jpeg);
  req.set_priority(3);
  ExpectError(req, grpc::StatusCode::INVALID_ARGUMENT, "priority");
  req = one(jpeg);
  req.set_policy("nope");
  ExpectError(req, grpc::StatusCode::NOT_FOUND, "no policy");

  v1::DetectRequest raw;
  *raw.add_images() = RawImage(10, 10);
  raw.mutable_images(0)->mutable_tensor()->mutable_data()->resize(7);
  ExpectError(raw, grpc::StatusCode::INVALID_ARGUMENT, "needs 300");
  v1::DetectRequest f32;
  v1::RawTensor* t = f32.add_images()->mutable_tensor();
  t->set_dtype(v1::RawTensor::FLOAT32);
  t->add_shape(224);
  t->add_shape(224);
  t->add_shape(3);
  t->set_data(std::string(224 * 224 * 3 * 4, '\0'));
  ExpectError(f32, grpc::StatusCode::INVALID_ARGUMENT, "letterboxed input");

  // Classify refuses the detector, and its default is the classifier.
  v1::ClassifyRequest c;
  c.set_model("det");
  c.add_images()->set_encoded(jpeg);
  v1::ClassifyResponse cr;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->Classify(&ctx, c, &cr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("is a detect model"), std::string::npos) << s.error_message();
  c.clear_model();
  grpc::ClientContext ctx2;
  ASSERT_TRUE(stub_->Classify(&ctx2, c, &cr).ok());
  EXPECT_EQ(cr.served_by().model(), "cls");
}

TEST_F(DetectE2ETest, APolicyChoosesAmongDetectorsOnly) {
  v1::DetectRequest req;
  req.set_policy("balanced");
  req.add_images()->set_encoded(Jpeg(128, 96));
  v1::DetectResponse resp;
  grpc::Status s = Detect(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.served_by().model(), "det");
  EXPECT_FALSE(resp.served_by().decision_reason().empty());
}

TEST_F(DetectE2ETest, PreletterboxedFloatTensorsGetBoxesInInputPixels) {
  // Zeros, as FLOAT32 and as FLOAT16 (a half's zero is zero bytes too).
  for (const auto& [dtype, bytes] : {std::pair{v1::RawTensor::FLOAT32, sizeof(float)},
                                     std::pair{v1::RawTensor::FLOAT16, size_t{2}}}) {
    SCOPED_TRACE(v1::RawTensor::DType_Name(dtype));
    v1::DetectRequest req;
    v1::RawTensor* t = req.add_images()->mutable_tensor();
    t->set_dtype(dtype);
    t->add_shape(kInput);
    t->add_shape(kInput);
    t->add_shape(3);
    t->set_data(std::string(kInput * kInput * 3 * bytes, '\0'));
    req.set_max_detections(1000);
    v1::DetectResponse resp;
    ASSERT_TRUE(Detect(req, &resp).ok());
    ExpectKnownBoxes(resp.results(0), kInput, kInput);
    EXPECT_EQ(resp.results(0).detections_size(), (kInput / kCell) * (kInput / kCell));
  }
}

TEST_F(DetectE2ETest, StreamAnswersEveryMessageAndKeepsGoingAfterErrors) {
  grpc::ClientContext ctx;
  auto stream = stub_->DetectStream(&ctx);
  const int kMessages = 6;
  for (int i = 0; i < kMessages; ++i) {
    v1::DetectRequest req;
    req.set_request_id(absl::StrCat("m", i));
    req.set_max_detections(1000);
    req.add_images()->set_encoded(i == 3 ? std::string("garbage")
                                         : Jpeg(100 + 37 * i, 80 + 11 * i));
    ASSERT_TRUE(stream->Write(req));
  }
  stream->WritesDone();
  v1::DetectResponse resp;
  std::vector<bool> seen(kMessages, false);
  int answers = 0;
  while (stream->Read(&resp)) {
    ++answers;
    const int i = std::stoi(resp.request_id().substr(1));
    ASSERT_GE(i, 0);
    ASSERT_LT(i, kMessages);
    EXPECT_FALSE(seen[i]) << "answered twice: " << i;
    seen[i] = true;
    if (i == 3) {
      EXPECT_EQ(resp.error().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
      EXPECT_EQ(resp.results_size(), 0);
    } else {
      EXPECT_EQ(resp.error().code(), 0) << resp.error().message();
      ASSERT_EQ(resp.results_size(), 1);
      ExpectKnownBoxes(resp.results(0), 100 + 37 * i, 80 + 11 * i);
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(answers, kMessages);
}

}  // namespace
}  // namespace visionserve
