// End-to-end: the real visionserve binary on 127.0.0.1, called over gRPC with the C++ client.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spng.h>
#include <sys/socket.h>
#include <turbojpeg.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/preprocess/half.h"
#include "tests/e2e/server_process.h"
#include "vision_service.grpc.pb.h"

#ifndef VISIONSERVE_BINARY
#error "VISIONSERVE_BINARY must name the server binary"
#endif

namespace visionserve {
namespace {

using testing::ServerProcess;
namespace health = grpc::health::v1;

// ---------------------------------------------------------------------------------------------
// Test images

std::vector<uint8_t> Pixels(int w, int h, int channels, uint32_t seed) {
  std::vector<uint8_t> p(static_cast<size_t>(w) * h * channels);
  std::mt19937 rng(seed);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < channels; ++c) {
        // Smooth gradients plus noise: JPEG-friendly and not constant.
        p[(static_cast<size_t>(y) * w + x) * channels + c] =
            static_cast<uint8_t>((x * (c + 1) + y * 2 + rng() % 16) & 255);
      }
    }
  }
  return p;
}

std::string Jpeg(int w, int h, uint32_t seed = 1) {
  const auto rgb = Pixels(w, h, 3, seed);
  tjhandle tj = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  EXPECT_EQ(tjCompress2(tj, rgb.data(), w, 0, h, TJPF_RGB, &out, &size, TJSAMP_420, 90, 0), 0);
  std::string s(reinterpret_cast<char*>(out), size);
  tjFree(out);
  tjDestroy(tj);
  return s;
}

// color_type: SPNG_COLOR_TYPE_GRAYSCALE / TRUECOLOR / TRUECOLOR_ALPHA; depth 8 or 16.
std::string Png(int w, int h, int color_type, int depth, uint32_t seed = 2,
                std::vector<uint8_t>* rgb8 = nullptr) {
  const int channels = color_type == SPNG_COLOR_TYPE_GRAYSCALE         ? 1
                       : color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA ? 4
                                                                       : 3;
  const auto px = Pixels(w, h, channels, seed);
  std::vector<uint8_t> data;
  if (depth == 16) {
    for (uint8_t v : px) {
      data.push_back(v);  // big-endian 16-bit: v * 257
      data.push_back(v);
    }
  } else {
    data = px;
  }
  if (rgb8) {
    rgb8->clear();
    for (size_t i = 0; i < px.size(); i += channels) {
      for (int c = 0; c < 3; ++c) rgb8->push_back(px[i + (channels == 1 ? 0 : c)]);
    }
  }
  spng_ctx* ctx = spng_ctx_new(SPNG_CTX_ENCODER);
  spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
  spng_ihdr ihdr{};
  ihdr.width = w;
  ihdr.height = h;
  ihdr.bit_depth = depth;
  ihdr.color_type = color_type;
  spng_set_ihdr(ctx, &ihdr);
  EXPECT_EQ(spng_encode_image(ctx, data.data(), data.size(), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE),
            0);
  size_t size = 0;
  int err = 0;
  void* buf = spng_get_png_buffer(ctx, &size, &err);
  std::string s(static_cast<char*>(buf), size);
  free(buf);
  spng_ctx_free(ctx);
  return s;
}

// A PNG whose header claims 100000 x 100000 pixels (a decompression bomb's signature).
std::string BombPng() {
  std::string s = Png(8, 8, SPNG_COLOR_TYPE_TRUECOLOR, 8);
  // IHDR data starts at byte 16: width and height, big-endian; fix the CRC too.
  const uint32_t big = 100000;
  for (int i = 0; i < 4; ++i) {
    s[16 + i] = static_cast<char>((big >> (24 - 8 * i)) & 255);
    s[20 + i] = static_cast<char>((big >> (24 - 8 * i)) & 255);
  }
  uint32_t crc = 0xFFFFFFFFu;
  for (int i = 12; i < 29; ++i) {
    crc ^= static_cast<uint8_t>(s[i]);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xFFFFFFFFu;
  for (int i = 0; i < 4; ++i) s[29 + i] = static_cast<char>((crc >> (24 - 8 * i)) & 255);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Fixture: one server for the suite.

class ServerE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(VISIONSERVE_BINARY,
                                {"--max-message-bytes", "16000000", "--max-images-per-request", "8",
                                 "--max-image-pixels", "40000000"});
    ASSERT_TRUE(server_->ok());
    ASSERT_TRUE(server_->WaitForOutput("SERVING", std::chrono::seconds(120))) << server_->output();
  }
  static void TearDownTestSuite() {
    if (server_->ok()) {
      EXPECT_EQ(server_->Stop(SIGTERM, std::chrono::seconds(30)), 0) << server_->output();
    }
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(server_ && server_->ok());
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(-1);
    channel_ =
        grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args);
    stub_ = v1::VisionService::NewStub(channel_);
  }

  grpc::Status Classify(const v1::ClassifyRequest& req, v1::ClassifyResponse* resp,
                        int timeout_ms = 30000) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
    return stub_->Classify(&ctx, req, resp);
  }
  static v1::ClassifyRequest Encoded(const std::string& bytes, const std::string& model = "") {
    v1::ClassifyRequest req;
    if (!model.empty()) req.set_model(model);
    req.add_images()->set_encoded(bytes);
    return req;
  }
  void ExpectError(const v1::ClassifyRequest& req, grpc::StatusCode code,
                   const std::string& message_part) {
    v1::ClassifyResponse resp;
    grpc::Status s = Classify(req, &resp);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_NE(s.error_message().find(message_part), std::string::npos)
        << "message: " << s.error_message() << "\nwanted: " << message_part;
  }

  static ServerProcess* server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::VisionService::Stub> stub_;
};

ServerProcess* ServerE2ETest::server_ = nullptr;

void ExpectValidResult(const v1::Classification& r, int k) {
  ASSERT_EQ(r.classes_size(), k);
  float prev = 2;
  for (const auto& c : r.classes()) {
    EXPECT_GE(c.index(), 0);
    EXPECT_LT(c.index(), 1000);
    EXPECT_FALSE(c.label().empty());
    EXPECT_GT(c.score(), 0);
    EXPECT_LE(c.score(), prev);
    prev = c.score();
  }
  EXPECT_GE(r.timing().batch_size(), 1);
  EXPECT_GT(r.timing().compute_us(), 0);
  EXPECT_GE(r.timing().total_us(), r.timing().compute_us());
}

TEST_F(ServerE2ETest, HealthIsServingAndReflectionIsOn) {
  auto h = health::Health::NewStub(channel_);
  for (const std::string service : {"", "visionserve.v1.VisionService"}) {
    health::HealthCheckRequest req;
    req.set_service(service);
    health::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(h->Check(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.status(), health::HealthCheckResponse::SERVING) << service;
  }
  // Reflection lists the services.
  auto r = grpc::reflection::v1alpha::ServerReflection::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = r->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("*");
  ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::set<std::string> services;
  for (const auto& s : resp.list_services_response().service()) services.insert(s.name());
  EXPECT_TRUE(services.count("visionserve.v1.VisionService"));
  EXPECT_TRUE(services.count("grpc.health.v1.Health"));
  while (stream->Read(&resp)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerE2ETest, ListsTheEmbeddedDefaultModelsWithTheirProfiles) {
  v1::ListModelsResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->ListModels(&ctx, v1::ListModelsRequest(), &resp).ok());
  ASSERT_EQ(resp.models_size(), 4);
  std::vector<std::string> names, tasks;
  for (const auto& m : resp.models()) {
    names.push_back(m.name());
    tasks.push_back(m.task());
    EXPECT_EQ(m.state(), v1::READY);
    EXPECT_EQ(m.weights(), "synthetic (seed 0)");
    EXPECT_EQ(m.input_shape_size(), 3);
    EXPECT_GT(m.top1(), 70);
    EXPECT_FALSE(m.latency_profile().empty());
    for (const auto& p : m.latency_profile()) EXPECT_GT(p.latency_ms(), 0);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"regnet_y_400mf", "efficientnet_b0", "convnext_tiny",
                                             "det_regnet_y_400mf_416"}));
  EXPECT_EQ(tasks, (std::vector<std::string>{"classify", "classify", "classify", "detect"}));
  EXPECT_TRUE(resp.models(0).is_default());
  EXPECT_FALSE(resp.models(1).is_default());
  EXPECT_TRUE(resp.models(3).is_default());  // Detect's default
  EXPECT_EQ(resp.models(3).num_classes(), 80);
  EXPECT_EQ(resp.models(3).num_anchors(), 52 * 52 + 26 * 26 + 13 * 13);
  EXPECT_TRUE(resp.models(3).preprocessing().letterbox());

  v1::GetModelRequest get;
  get.set_name("convnext_tiny");
  v1::ModelInfo info;
  grpc::ClientContext ctx2;
  ASSERT_TRUE(stub_->GetModel(&ctx2, get, &info).ok());
  EXPECT_EQ(info.family(), "convnext");
  EXPECT_EQ(info.preprocessing().resize_size(), 236);  // torchvision's ConvNeXt-T weights
  EXPECT_EQ(info.preprocessing().crop_size(), 224);
  get.set_name("nope");
  grpc::ClientContext ctx3;
  EXPECT_EQ(stub_->GetModel(&ctx3, get, &info).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerE2ETest, ClassifiesEveryImageKindWithTopK) {
  v1::ClassifyRequest req;
  req.set_request_id("kinds");
  req.set_top_k(7);
  req.add_images()->set_encoded(Jpeg(640, 480));
  req.add_images()->set_encoded(Jpeg(4000, 3000));  // DCT-scaled decode
  req.add_images()->set_encoded(Png(300, 200, SPNG_COLOR_TYPE_GRAYSCALE, 8));
  req.add_images()->set_encoded(Png(300, 200, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8));
  req.add_images()->set_encoded(Png(120, 333, SPNG_COLOR_TYPE_TRUECOLOR, 16));
  v1::RawTensor* u8 = req.add_images()->mutable_tensor();
  u8->set_dtype(v1::RawTensor::UINT8);
  for (int64_t d : {50, 70, 3}) u8->add_shape(d);
  const auto px = Pixels(70, 50, 3, 9);
  u8->set_data(std::string(px.begin(), px.end()));
  v1::RawTensor* f32 = req.add_images()->mutable_tensor();
  f32->set_dtype(v1::RawTensor::FLOAT32);
  for (int64_t d : {224, 224, 3}) f32->add_shape(d);
  std::vector<float> values(224 * 224 * 3);
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(0.001f * i);
  f32->set_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));

  v1::ClassifyResponse resp;
  grpc::Status s = Classify(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.request_id(), "kinds");
  ASSERT_EQ(resp.results_size(), 7);
  for (const auto& r : resp.results()) ExpectValidResult(r, 7);
  EXPECT_EQ(resp.served_by().model(), "regnet_y_400mf");
  EXPECT_EQ(resp.served_by().decision_reason(), "default model");
  EXPECT_EQ(resp.served_by().weights(), "synthetic (seed 0)");
  EXPECT_EQ(resp.served_by().version(), 1);
  EXPECT_GT(resp.timing().total_us(), 0);
}

TEST_F(ServerE2ETest, PngAndTheSamePixelsAsARawTensorGiveIdenticalResults) {
  std::vector<uint8_t> rgb;
  const std::string png = Png(97, 61, SPNG_COLOR_TYPE_TRUECOLOR, 8, 5, &rgb);
  v1::ClassifyRequest a = Encoded(png, "efficientnet_b0");
  v1::ClassifyRequest b;
  b.set_model("efficientnet_b0");
  v1::RawTensor* t = b.add_images()->mutable_tensor();
  t->set_dtype(v1::RawTensor::UINT8);
  for (int64_t d : {61, 97, 3}) t->add_shape(d);
  t->set_data(std::string(rgb.begin(), rgb.end()));
  v1::ClassifyResponse ra, rb;
  ASSERT_TRUE(Classify(a, &ra).ok());
  ASSERT_TRUE(Classify(b, &rb).ok());
  ASSERT_EQ(ra.results(0).classes_size(), rb.results(0).classes_size());
  for (int k = 0; k < ra.results(0).classes_size(); ++k) {
    EXPECT_EQ(ra.results(0).classes(k).index(), rb.results(0).classes(k).index());
    EXPECT_FLOAT_EQ(ra.results(0).classes(k).score(), rb.results(0).classes(k).score());
  }
  EXPECT_EQ(ra.served_by().decision_reason(), "requested by name");
}

// FLOAT16 is exact on the server's side: the same values sent as FLOAT32 answer the same, and a
// non-finite half is refused like a non-finite float.
TEST_F(ServerE2ETest, AFloat16TensorAnswersLikeTheSameValuesAsFloat32) {
  std::vector<float> values(224 * 224 * 3);
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = preprocess::HalfBitsToFloat(preprocess::FloatToHalfBits(std::sin(0.003f * i)));
  }
  v1::ClassifyRequest a, b;
  a.set_top_k(10);
  b.set_top_k(10);
  v1::RawTensor* t32 = a.add_images()->mutable_tensor();
  t32->set_dtype(v1::RawTensor::FLOAT32);
  v1::RawTensor* t16 = b.add_images()->mutable_tensor();
  t16->set_dtype(v1::RawTensor::FLOAT16);
  for (int64_t d : {224, 224, 3}) {
    t32->add_shape(d);
    t16->add_shape(d);
  }
  t32->set_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
  t16->set_data(preprocess::FloatsToHalfBytes(values));
  ASSERT_EQ(t16->data().size(), values.size() * 2);
  v1::ClassifyResponse ra, rb;
  ASSERT_TRUE(Classify(a, &ra).ok());
  grpc::Status s = Classify(b, &rb);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(ra.results(0).classes_size(), 10);
  ASSERT_EQ(rb.results(0).classes_size(), 10);
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(ra.results(0).classes(k).index(), rb.results(0).classes(k).index());
    EXPECT_EQ(ra.results(0).classes(k).score(), rb.results(0).classes(k).score());
  }

  std::string data = t16->data();
  data[2 * 1000 + 1] = 0x7e;  // NaN at element 1000 (h=1, w=109, c=1)
  t16->set_data(data);
  ExpectError(b, grpc::StatusCode::INVALID_ARGUMENT, "element 1000 (h=1, w=109, c=1) is NaN");
  t16->set_dtype(static_cast<v1::RawTensor::DType>(9));
  ExpectError(b, grpc::StatusCode::INVALID_ARGUMENT, "UINT8, FLOAT32 or FLOAT16");
}

TEST_F(ServerE2ETest, BadRequestsGetSpecificErrors) {
  using C = grpc::StatusCode;
  ExpectError(Encoded("this is not an image"), C::INVALID_ARGUMENT, "format");
  const std::string jpeg = Jpeg(320, 240);
  ExpectError(Encoded(jpeg.substr(0, jpeg.size() / 3)), C::INVALID_ARGUMENT, "");
  const std::string png = Png(64, 64, SPNG_COLOR_TYPE_TRUECOLOR, 8);
  ExpectError(Encoded(png.substr(0, png.size() - 40)), C::INVALID_ARGUMENT, "");
  ExpectError(Encoded(BombPng()), C::INVALID_ARGUMENT, "100000");
  ExpectError(Encoded(jpeg, "no_such_model"), C::NOT_FOUND, "no_such_model");
  ExpectError(v1::ClassifyRequest(), C::INVALID_ARGUMENT, "no images");
  {
    v1::ClassifyRequest req = Encoded(jpeg);
    for (int i = 0; i < 8; ++i) req.add_images()->set_encoded(jpeg);
    ExpectError(req, C::INVALID_ARGUMENT, "at most 8");
  }
  for (int k : {-1, 1001}) {
    v1::ClassifyRequest req = Encoded(jpeg);
    req.set_top_k(k);
    ExpectError(req, C::INVALID_ARGUMENT, "top_k");
  }
  {
    v1::ClassifyRequest req;
    v1::RawTensor* t = req.add_images()->mutable_tensor();
    t->set_dtype(v1::RawTensor::UINT8);
    for (int64_t d : {10, 10, 3}) t->add_shape(d);
    t->set_data(std::string(299, '\0'));  // one byte short
    ExpectError(req, C::INVALID_ARGUMENT, "");
    t->set_data(std::string(300, '\0'));
    t->clear_shape();
    for (int64_t d : {0, 10, 3}) t->add_shape(d);
    ExpectError(req, C::INVALID_ARGUMENT, "");
    t->clear_shape();
    for (int64_t d : {10, 10, 4}) t->add_shape(d);
    ExpectError(req, C::INVALID_ARGUMENT, "[height, width, 3]");
    t->set_dtype(v1::RawTensor::DTYPE_UNSPECIFIED);
    ExpectError(req, C::INVALID_ARGUMENT, "dtype");
  }
  {
    v1::ClassifyRequest req;
    v1::RawTensor* t = req.add_images()->mutable_tensor();
    t->set_dtype(v1::RawTensor::FLOAT32);
    for (int64_t d : {224, 224, 3}) t->add_shape(d);
    std::vector<float> v(224 * 224 * 3, 0.5f);
    v[1234] = std::numeric_limits<float>::quiet_NaN();
    t->set_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
    ExpectError(req, C::INVALID_ARGUMENT, "1234");
    v[1234] = std::numeric_limits<float>::infinity();
    t->set_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
    ExpectError(req, C::INVALID_ARGUMENT, "1234");
    t->clear_shape();
    for (int64_t d : {200, 224, 3}) t->add_shape(d);
    ExpectError(req, C::INVALID_ARGUMENT, "");
  }
  {
    v1::ClassifyRequest req;
    req.add_images();  // neither bytes nor tensor
    ExpectError(req, C::INVALID_ARGUMENT, "neither");
  }
  ExpectError(Encoded(std::string(17'000'000, 'x')), C::RESOURCE_EXHAUSTED, "");
  {
    v1::ClassifyRequest req = Encoded(jpeg);
    req.set_policy("cheap");
    ExpectError(req, C::NOT_FOUND, "cheap");
    req.set_priority(3);
    req.set_model("regnet_y_400mf");
    ExpectError(req, C::INVALID_ARGUMENT, "priority");
  }
}

TEST_F(ServerE2ETest, OneBadImageFailsItsRequestButNotTheBatchItWouldHaveJoined) {
  const std::string good = Jpeg(256, 256);
  // A preprocessed tensor is read in place from the request: a failed request must not be
  // answered (and freed) while its other images still sit in a batcher queue.
  v1::Image tensor;
  v1::RawTensor* t32 = tensor.mutable_tensor();
  t32->set_dtype(v1::RawTensor::FLOAT32);
  for (int d : {224, 224, 3}) t32->add_shape(d);
  std::vector<float> values(224 * 224 * 3, 0.25f);
  t32->set_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      auto stub = v1::VisionService::NewStub(channel_);
      for (int i = 0; i < 5; ++i) {
        v1::ClassifyRequest req;
        if (i % 2) {
          *req.add_images() = tensor;
        } else {
          req.add_images()->set_encoded(good);
        }
        if (t % 2) req.add_images()->set_encoded("garbage");
        v1::ClassifyResponse resp;
        grpc::ClientContext ctx;
        grpc::Status s = stub->Classify(&ctx, req, &resp);
        if (t % 2) {
          bad += s.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
                 s.error_message().find("image 1") != std::string::npos;
        } else {
          ok += s.ok() && resp.results_size() == 1;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 15);
  EXPECT_EQ(bad.load(), 15);
}

TEST_F(ServerE2ETest, ConcurrentClientsAllGetAnswersAndRequestsGetBatched) {
  const std::string img = Jpeg(320, 240);
  std::atomic<int> ok{0}, batched{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto stub = v1::VisionService::NewStub(channel_);
      for (int i = 0; i < 10; ++i) {
        v1::ClassifyResponse resp;
        grpc::ClientContext ctx;
        if (stub->Classify(&ctx, Encoded(img), &resp).ok() && resp.results_size() == 1) {
          ++ok;
          batched += resp.results(0).timing().batch_size() > 1;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 80);
  EXPECT_GT(batched.load(), 0);
}

// Assertions hold under any CPU load (other tests may run beside this one): they rely on the
// models' large latency and accuracy gaps, not on exact timings.
TEST_F(ServerE2ETest, PoliciesChooseTheVariantAndSayWhy) {
  const std::string img = Jpeg(320, 240);
  v1::ClassifyResponse resp;
  v1::ClassifyRequest req = Encoded(img);
  for (const std::string name : {"realtime", "balanced", "best"}) {
    req.set_policy(name);
    grpc::Status s = Classify(req, &resp);
    const std::string& why = s.ok() ? resp.served_by().decision_reason() : s.error_message();
    EXPECT_NE(why.find("policy " + name), std::string::npos) << why;
  }
  v1::InlinePolicy* ip = req.mutable_inline_policy();
  ip->set_latency_budget_ms(10000);  // everything fits: the most accurate
  ASSERT_TRUE(Classify(req, &resp).ok());
  EXPECT_EQ(resp.served_by().model(), "convnext_tiny");
  EXPECT_NE(resp.served_by().decision_reason().find("most accurate"), std::string::npos);
  // The fastest above 77 % top-1: efficientnet_b0 (~7 ms) or convnext_tiny (~40 ms), whichever
  // the server's own batch-1 profile says is faster (warm-up on a loaded machine can distort it).
  auto b1_ms = [&](const std::string& model) {
    grpc::ClientContext ctx;
    v1::GetModelRequest get;
    get.set_name(model);
    v1::ModelInfo info;
    EXPECT_TRUE(stub_->GetModel(&ctx, get, &info).ok());
    for (const auto& p : info.latency_profile()) {
      if (p.batch_size() == 1) return p.latency_ms();
    }
    return 1e9;
  };
  ip->set_min_top1(77);
  ip->set_objective(v1::InlinePolicy::FASTEST);
  const bool effnet_faster = b1_ms("efficientnet_b0") < b1_ms("convnext_tiny");
  ASSERT_TRUE(Classify(req, &resp).ok());
  EXPECT_EQ(resp.served_by().model(), effnet_faster ? "efficientnet_b0" : "convnext_tiny")
      << resp.served_by().decision_reason();
  ip->add_families("convnext");
  ASSERT_TRUE(Classify(req, &resp).ok());
  EXPECT_EQ(resp.served_by().model(), "convnext_tiny");
  ip->clear_families();
  ip->set_min_top1(99);
  ExpectError(req, grpc::StatusCode::INVALID_ARGUMENT, "top-1 >= 99");
  ip->set_min_top1(0);
  ip->set_latency_budget_ms(0.5);  // nothing answers in 0.5 ms
  ip->set_on_miss(v1::InlinePolicy::REJECT);
  ExpectError(req, grpc::StatusCode::DEADLINE_EXCEEDED, "no model predicted within");
  ip->set_on_miss(v1::InlinePolicy::SERVE_FASTEST);
  const bool convnext_slowest = b1_ms("convnext_tiny") > b1_ms("efficientnet_b0") &&
                                b1_ms("convnext_tiny") > b1_ms("regnet_y_400mf");
  ASSERT_TRUE(Classify(req, &resp).ok());
  if (convnext_slowest) {
    EXPECT_NE(resp.served_by().model(), "convnext_tiny");
  }
  EXPECT_NE(resp.served_by().decision_reason().find("serving the fastest"), std::string::npos);
}

TEST_F(ServerE2ETest, DeadlinesThatCannotBeMetAreAnsweredDeadlineExceeded) {
  // ConvNeXt-T takes ~40 ms per image here; 10 ms cannot be met.
  v1::ClassifyResponse resp;
  grpc::Status s = Classify(Encoded(Jpeg(320, 240), "convnext_tiny"), &resp, 10);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  // The server keeps serving.
  EXPECT_TRUE(Classify(Encoded(Jpeg(64, 64)), &resp).ok());
}

TEST_F(ServerE2ETest, CancelledCallsLeaveTheServerHealthy) {
  const std::string img = Jpeg(320, 240);
  for (int i = 0; i < 10; ++i) {
    grpc::ClientContext ctx;
    v1::ClassifyResponse resp;
    absl::Notification done;
    grpc::Status status;
    const v1::ClassifyRequest req = Encoded(img, "convnext_tiny");  // outlives the call
    stub_->async()->Classify(&ctx, &req, &resp, [&](grpc::Status s) {
      status = s;
      done.Notify();
    });
    ctx.TryCancel();
    done.WaitForNotification();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  }
  v1::ClassifyResponse resp;
  EXPECT_TRUE(Classify(Encoded(img, "convnext_tiny"), &resp).ok());
}

TEST_F(ServerE2ETest, StreamAnswersEveryMessageWithItsIdAndKeepsGoingAfterErrors) {
  grpc::ClientContext ctx;
  auto stream = stub_->ClassifyStream(&ctx);
  const std::string img = Jpeg(200, 150);
  constexpr int kMessages = 12;
  for (int i = 0; i < kMessages; ++i) {
    v1::ClassifyRequest req = Encoded(i == 5 ? "broken" : img, i % 3 ? "" : "efficientnet_b0");
    req.set_request_id(absl::StrCat("m", i));
    req.set_top_k(2);
    ASSERT_TRUE(stream->Write(req));
  }
  stream->WritesDone();
  std::set<std::string> seen;
  v1::ClassifyResponse resp;
  while (stream->Read(&resp)) {
    EXPECT_TRUE(seen.insert(resp.request_id()).second) << "twice: " << resp.request_id();
    if (resp.request_id() == "m5") {
      EXPECT_EQ(resp.error().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
      EXPECT_FALSE(resp.error().message().empty());
    } else {
      EXPECT_EQ(resp.error().code(), 0) << resp.error().message();
      ASSERT_EQ(resp.results_size(), 1);
      ExpectValidResult(resp.results(0), 2);
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(seen.size(), static_cast<size_t>(kMessages));
}

// ---------------------------------------------------------------------------------------------
// Metrics

// GET http://127.0.0.1:port/path; the body, or "" on failure.
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string resp;
  char buf[8192];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

// The value of the sample whose line starts with `series` (name and labels exactly as
// exposed), or -1.
double Sample(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    ++at;
  }
  return -1;
}

TEST(ServerMetricsE2ETest, ExactCountsAfterAKnownSequenceAndValidExposition) {
  ServerProcess server(VISIONSERVE_BINARY, {"--metrics-listen", "127.0.0.1:0"});
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE(server.WaitForOutput("SERVING", std::chrono::seconds(120))) << server.output();
  const std::string out = server.output();
  const size_t at = out.find("metrics: http://127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << out;
  const int metrics_port = std::atoi(out.c_str() + at + std::strlen("metrics: http://127.0.0.1:"));
  auto stub = v1::VisionService::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  auto call = [&](v1::ClassifyRequest req, int timeout_ms) {
    v1::ClassifyResponse resp;
    grpc::ClientContext ctx;
    if (timeout_ms > 0) {
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
    }
    return stub->Classify(&ctx, req, &resp).error_code();
  };
  v1::ClassifyRequest two;
  two.add_images()->set_encoded(Jpeg(200, 100));
  two.add_images()->set_encoded(Png(50, 80, SPNG_COLOR_TYPE_TRUECOLOR, 8));
  v1::ClassifyRequest one;
  one.add_images()->set_encoded(Jpeg(64, 64));
  EXPECT_EQ(call(two, 0), grpc::StatusCode::OK);
  EXPECT_EQ(call(one, 30000), grpc::StatusCode::OK);  // with a deadline: within budget
  v1::ClassifyRequest bad;
  bad.add_images()->set_encoded("junk");
  EXPECT_EQ(call(bad, 0), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ClassifyRequest unknown = one;
  unknown.set_model("nope");
  EXPECT_EQ(call(unknown, 0), grpc::StatusCode::NOT_FOUND);
  v1::ClassifyRequest routed = one;
  routed.set_policy("best");
  EXPECT_EQ(call(routed, 0), grpc::StatusCode::OK);  // best: convnext_tiny on an idle server
  v1::ClassifyRequest hopeless = one;  // ConvNeXt-T needs ~40 ms: dropped as soon as queued
  hopeless.set_model("convnext_tiny");
  EXPECT_EQ(call(hopeless, 25), grpc::StatusCode::DEADLINE_EXCEEDED);

  const std::string text = HttpGet(metrics_port, "/metrics");
  ASSERT_FALSE(text.empty());
  const std::string r = "model=\"regnet_y_400mf\"";
  EXPECT_EQ(Sample(text, "visionserve_requests_total{code=\"OK\"," + r + ",rpc=\"Classify\"}"), 2);
  EXPECT_EQ(Sample(text, "visionserve_requests_total{code=\"INVALID_ARGUMENT\"," + r +
                             ",rpc=\"Classify\"}"),
            1);
  EXPECT_EQ(
      Sample(text, "visionserve_requests_total{code=\"NOT_FOUND\",model=\"\",rpc=\"Classify\"}"),
      1);
  EXPECT_EQ(Sample(text, "visionserve_inferred_images_total{" + r + "}"), 3);
  EXPECT_EQ(Sample(text, "visionserve_preprocess_duration_seconds_count{" + r + "}"), 3);
  EXPECT_EQ(Sample(text, "visionserve_queue_duration_seconds_count{" + r + "}"), 3);
  EXPECT_EQ(Sample(text, "visionserve_request_duration_seconds_count{" + r + ",rpc=\"Classify\"}"),
            3);
  EXPECT_EQ(Sample(text, "visionserve_budget_requests_total{" + r + ",outcome=\"within_budget\"}"),
            1);
  EXPECT_EQ(
      Sample(text, "visionserve_policy_decisions_total{model=\"convnext_tiny\",policy=\"best\"}"),
      1);
  const std::string c = "model=\"convnext_tiny\"";
  EXPECT_EQ(Sample(text, "visionserve_dropped_images_total{" + c + ",reason=\"deadline\"}"), 1);
  EXPECT_EQ(Sample(text, "visionserve_dropped_images_total{" + c + ",reason=\"cancelled\"}"), 0);
  EXPECT_EQ(Sample(text, "visionserve_requests_total{code=\"DEADLINE_EXCEEDED\"," + c +
                             ",rpc=\"Classify\"}"),
            1);
  EXPECT_EQ(Sample(text, "visionserve_budget_requests_total{" + c + ",outcome=\"past_budget\"}"),
            1);
  EXPECT_EQ(Sample(text, "visionserve_inferred_images_total{" + c + "}"), 1);  // only `best`
  EXPECT_EQ(Sample(text, "visionserve_model_state{" + r + ",state=\"READY\"}"), 1);
  EXPECT_EQ(Sample(text, "visionserve_queue_depth_images{" + r + "}"), 0);
  EXPECT_GT(Sample(text, "visionserve_process_resident_memory_bytes"), 1e6);
  EXPECT_GT(Sample(text, "visionserve_process_threads"), 2);
  const double batches = Sample(text, "visionserve_batches_total{" + r + "}");
  EXPECT_GE(batches, 1);
  EXPECT_LE(batches, 3);
  EXPECT_EQ(Sample(text, "visionserve_batch_size_images_sum{" + r + "}"), 3);

  // The exposition is valid for Prometheus (promtool from Debian's prometheus package).
  const std::string file = "/tmp/vs_metrics_" + std::to_string(getpid()) + ".txt";
  std::ofstream(file) << text;
  const int rc =
      std::system(("promtool check metrics < " + file + " > " + file + ".out 2>&1").c_str());
  std::ifstream in(file + ".out");
  std::stringstream lint;
  lint << in.rdbuf();
  EXPECT_EQ(rc, 0) << "promtool check metrics (install Debian's prometheus package):\n"
                   << lint.str();
  std::remove(file.c_str());
  std::remove((file + ".out").c_str());
  EXPECT_EQ(server.Stop(SIGTERM, std::chrono::seconds(30)), 0);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle: separate server processes.

TEST(ServerLifecycleE2ETest, SigtermDrainsRequestsInFlightThenExitsZero) {
  // Generous timeouts: sanitizer builds run the models several times slower.
  ServerProcess server(VISIONSERVE_BINARY, {"--drain-timeout-s", "120"});
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE(server.WaitForOutput("SERVING", std::chrono::seconds(120))) << server.output();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto stub = v1::VisionService::NewStub(channel);
  constexpr int kCalls = 6;
  struct Call {
    grpc::ClientContext ctx;
    v1::ClassifyRequest req;
    v1::ClassifyResponse resp;
    grpc::Status status;
    absl::Notification done;
  };
  std::vector<std::unique_ptr<Call>> calls;
  const std::string img = Jpeg(320, 240);
  for (int i = 0; i < kCalls; ++i) {
    auto c = std::make_unique<Call>();
    c->req.set_model("convnext_tiny");
    for (int k = 0; k < 4; ++k) c->req.add_images()->set_encoded(img);  // ~1 s of work
    Call* p = c.get();
    stub->async()->Classify(&p->ctx, &p->req, &p->resp, [p](grpc::Status s) {
      p->status = s;
      p->done.Notify();
    });
    calls.push_back(std::move(c));
  }
  // Let the requests reach the server, then ask it to stop.
  ASSERT_TRUE(server.WaitForOutput("SERVING", std::chrono::seconds(1)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  kill(server.pid(), SIGTERM);
  ASSERT_TRUE(server.WaitForOutput("draining", std::chrono::seconds(10)));
  {
    // Health says NOT_SERVING while draining (or the port is already closed).
    auto h = health::Health::NewStub(channel);
    health::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Status s = h->Check(&ctx, health::HealthCheckRequest(), &resp);
    if (s.ok()) {
      EXPECT_EQ(resp.status(), health::HealthCheckResponse::NOT_SERVING);
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    }
  }
  // New work is refused while draining (or the port is already closed).
  {
    v1::ClassifyRequest req;
    req.add_images()->set_encoded(img);
    v1::ClassifyResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Status s = stub->Classify(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
  for (auto& c : calls) {
    c->done.WaitForNotification();
    EXPECT_TRUE(c->status.ok()) << c->status.error_message();
    EXPECT_EQ(c->resp.results_size(), 4);
  }
  EXPECT_EQ(server.WaitExit(std::chrono::seconds(150)), 0) << server.output();
  EXPECT_NE(server.output().find("visionserve: stopped"), std::string::npos);
}

TEST(ServerLifecycleE2ETest, ServesAModelRepositoryAndRejectsABadOne) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("vs_repo_" + std::to_string(getpid()));
  fs::create_directories(dir / "big");
  std::ofstream(dir / "small.pbtxt") << "variant: \"mobilenet_v3_small\"\n"
                                        "version: 3\n"
                                        "batching { max_batch_size: 4 max_queue_delay_us: 500 }\n";
  std::ofstream(dir / "big" / "config.pbtxt") << "variant: \"regnet_y_400mf\" seed: 7\n";
  std::ofstream(dir / "policies.pbtxt") << "policy { name: \"tiny\" objective: FASTEST }\n"
                                           "default_policy: \"tiny\"\n";
  {
    ServerProcess server(VISIONSERVE_BINARY,
                         {"--repository", dir.string(), "--default-model", "small"});
    ASSERT_TRUE(server.ok());
    ASSERT_TRUE(server.WaitForOutput("SERVING", std::chrono::seconds(120))) << server.output();
    auto stub = v1::VisionService::NewStub(
        grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
    v1::ListModelsResponse list;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->ListModels(&ctx, v1::ListModelsRequest(), &list).ok());
    ASSERT_EQ(list.models_size(), 2);
    EXPECT_EQ(list.models(0).name(), "big");
    EXPECT_EQ(list.models(0).weights(), "synthetic (seed 7)");
    EXPECT_EQ(list.models(1).name(), "small");
    EXPECT_TRUE(list.models(1).is_default());
    EXPECT_EQ(list.models(1).batching().max_batch_size(), 4);
    v1::ClassifyRequest req;
    req.add_images()->set_encoded(Jpeg(100, 100));
    v1::ClassifyResponse resp;
    grpc::ClientContext ctx2;
    ASSERT_TRUE(stub->Classify(&ctx2, req, &resp).ok());
    EXPECT_EQ(resp.served_by().model(), "small");
    EXPECT_EQ(resp.served_by().variant(), "mobilenet_v3_small");
    EXPECT_EQ(resp.served_by().version(), 3);
    EXPECT_NE(resp.served_by().decision_reason().find("policy tiny"), std::string::npos)
        << resp.served_by().decision_reason();
    EXPECT_EQ(server.Stop(SIGINT, std::chrono::seconds(30)), 0);
  }
  std::ofstream(dir / "broken.pbtxt") << "variant: \"regnet_y_400mf\" bogus_field: 1\n";
  {
    ServerProcess server(VISIONSERVE_BINARY, {"--repository", dir.string()},
                         std::chrono::seconds(60), /*expect_start=*/false);
    EXPECT_FALSE(server.ok());
    EXPECT_NE(server.WaitExit(std::chrono::seconds(30)), 0);
    EXPECT_NE(server.output().find("broken.pbtxt"), std::string::npos) << server.output();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace visionserve
