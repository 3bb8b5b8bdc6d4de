#include "loadtest/workload.h"

#include <spng.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/preprocess/half.h"

namespace visionserve::loadtest {
namespace {

// The message a call carries: the three parts concatenated, as the transport sends them.
v1::ClassifyRequest Assemble(const Workload& w, uint64_t seq, const std::string& id) {
  const Workload::Request r = w.Pick(seq);
  v1::ClassifyRequest req;
  const std::string bytes =
      Workload::RequestIdPart(id) + std::string(r.target_part) + std::string(r.images_part);
  EXPECT_TRUE(req.ParseFromString(bytes));
  return req;
}

TEST(ParseMixTest, KindsWeightsAndInlinePolicies) {
  auto mix = ParseMix(
      "model:convnext_tiny@1; policy:balanced@3 ;default;"
      "inline:budget_ms=50,min_top1=75.5,objective=fastest,on_miss=serve_fastest,"
      "families=regnet|efficientnet@0.5");
  ASSERT_TRUE(mix.ok()) << mix.status();
  ASSERT_EQ(mix->size(), 4u);
  EXPECT_EQ((*mix)[0].kind, Target::Kind::kModel);
  EXPECT_EQ((*mix)[0].name, "convnext_tiny");
  EXPECT_EQ((*mix)[0].weight, 1);
  EXPECT_EQ((*mix)[1].kind, Target::Kind::kPolicy);
  EXPECT_EQ((*mix)[1].name, "balanced");
  EXPECT_EQ((*mix)[1].weight, 3);
  EXPECT_EQ((*mix)[2].kind, Target::Kind::kDefault);
  const Target& in = (*mix)[3];
  EXPECT_EQ(in.kind, Target::Kind::kInline);
  EXPECT_EQ(in.weight, 0.5);
  EXPECT_EQ(in.inline_policy.latency_budget_ms(), 50);
  EXPECT_EQ(in.inline_policy.min_top1(), 75.5);
  EXPECT_EQ(in.inline_policy.objective(), v1::InlinePolicy::FASTEST);
  EXPECT_EQ(in.inline_policy.on_miss(), v1::InlinePolicy::SERVE_FASTEST);
  ASSERT_EQ(in.inline_policy.families_size(), 2);
  EXPECT_EQ(in.inline_policy.families(1), "efficientnet");
}

TEST(ParseMixTest, RejectsMalformedEntries) {
  for (const char* bad :
       {"", "model:", "policy:@2", "model:a@0", "model:a@-1", "model:a@x", "resnet",
        "inline:budget_ms=-3", "inline:speed=1", "inline:objective=cheapest",
        "inline:on_miss=retry", "inline:budget_ms"}) {
    EXPECT_FALSE(ParseMix(bad).ok()) << bad;
  }
}

TEST(WorkloadTest, PartsConcatenateIntoTheIntendedRequest) {
  WorkloadOptions o;
  o.width = 64;
  o.height = 48;
  o.distinct_images = 3;
  o.images_per_request = 2;
  o.targets = *ParseMix("model:m1");
  o.top_k = 3;
  o.priority = 2;
  auto w = Workload::Create(o);
  ASSERT_TRUE(w.ok()) << w.status();
  const v1::ClassifyRequest req = Assemble(**w, 5, "vl-5");
  EXPECT_EQ(req.request_id(), "vl-5");
  EXPECT_EQ(req.model(), "m1");
  EXPECT_EQ(req.top_k(), 3);
  EXPECT_EQ(req.priority(), 2);
  ASSERT_EQ(req.images_size(), 2);
  EXPECT_FALSE(req.images(0).encoded().empty());
  EXPECT_EQ((*w)->images_per_request(), 2);
  EXPECT_GT((*w)->mean_request_bytes(), 0);
  EXPECT_NE((*w)->Describe().find("3 synthetic 64x48 jpeg images"), std::string::npos);
}

TEST(WorkloadTest, SyntheticJpegAndPngDecodeToTheRequestedSize) {
  for (Encoding e : {Encoding::kJpeg, Encoding::kPng}) {
    WorkloadOptions o;
    o.width = 320;
    o.height = 200;
    o.encoding = e;
    auto w = Workload::Create(o);
    ASSERT_TRUE(w.ok()) << w.status();
    const std::string img = Assemble(**w, 0, "x").images(0).encoded();
    int width = 0, height = 0;
    if (e == Encoding::kJpeg) {
      tjhandle tj = tjInitDecompress();
      int subsamp = 0, colorspace = 0;
      ASSERT_EQ(tjDecompressHeader3(tj, reinterpret_cast<const unsigned char*>(img.data()),
                                    img.size(), &width, &height, &subsamp, &colorspace),
                0);
      tjDestroy(tj);
    } else {
      spng_ctx* ctx = spng_ctx_new(0);
      spng_set_png_buffer(ctx, img.data(), img.size());
      spng_ihdr ihdr{};
      ASSERT_EQ(spng_get_ihdr(ctx, &ihdr), 0);
      width = static_cast<int>(ihdr.width);
      height = static_cast<int>(ihdr.height);
      spng_ctx_free(ctx);
    }
    EXPECT_EQ(width, 320) << EncodingName(e);
    EXPECT_EQ(height, 200) << EncodingName(e);
  }
}

TEST(WorkloadTest, RawTensorsHaveTheServersLayout) {
  WorkloadOptions o;
  o.width = 40;
  o.height = 30;
  o.encoding = Encoding::kRawU8;
  auto w = Workload::Create(o);
  ASSERT_TRUE(w.ok());
  const v1::RawTensor t = Assemble(**w, 0, "x").images(0).tensor();
  EXPECT_EQ(t.dtype(), v1::RawTensor::UINT8);
  EXPECT_EQ(std::vector<int64_t>(t.shape().begin(), t.shape().end()),
            std::vector<int64_t>({30, 40, 3}));
  EXPECT_EQ(t.data().size(), 30u * 40 * 3);

  o.encoding = Encoding::kRawF32;
  EXPECT_FALSE(Workload::Create(o).ok());  // not square: cannot be a model input
  o.width = o.height = 16;
  w = Workload::Create(o);
  ASSERT_TRUE(w.ok());
  const v1::RawTensor f = Assemble(**w, 0, "x").images(0).tensor();
  EXPECT_EQ(f.dtype(), v1::RawTensor::FLOAT32);
  EXPECT_EQ(f.data().size(), 16u * 16 * 3 * sizeof(float));

  o.encoding = Encoding::kRawF16;
  w = Workload::Create(o);
  ASSERT_TRUE(w.ok());
  const v1::RawTensor h = Assemble(**w, 0, "x").images(0).tensor();
  EXPECT_EQ(h.dtype(), v1::RawTensor::FLOAT16);
  EXPECT_EQ(std::vector<int64_t>(h.shape().begin(), h.shape().end()),
            std::vector<int64_t>({16, 16, 3}));
  ASSERT_EQ(h.data().size(), 16u * 16 * 3 * 2);
  // The same synthetic values as the f32 tensor, rounded to halves.
  for (size_t i = 0; i < 16 * 16 * 3; ++i) {
    float v;
    std::memcpy(&v, f.data().data() + 4 * i, sizeof(v));
    const auto* b = reinterpret_cast<const uint8_t*>(h.data().data()) + 2 * i;
    ASSERT_EQ(b[0] | (b[1] << 8), preprocess::FloatToHalfBits(v)) << i;
  }
}

TEST(WorkloadTest, PickFollowsTheWeightsDeterministicallyAndRotatesImages) {
  WorkloadOptions o;
  o.width = o.height = 16;
  o.distinct_images = 4;
  o.targets = *ParseMix("model:a@3;model:b@1");
  auto w = Workload::Create(o);
  ASSERT_TRUE(w.ok());
  int a = 0;
  std::set<absl::string_view> image_parts;
  for (uint64_t seq = 0; seq < 20000; ++seq) {
    const Workload::Request r = (*w)->Pick(seq);
    a += r.target == 0;
    EXPECT_EQ(r.target, (*w)->Pick(seq).target);
    image_parts.insert(r.images_part);
  }
  EXPECT_NEAR(a / 20000.0, 0.75, 0.015);
  EXPECT_EQ(image_parts.size(), 4u);
  EXPECT_EQ(Assemble(**w, 7, "x").model(), (*w)->Pick(7).target == 0 ? "a" : "b");
}

TEST(WorkloadTest, FolderInputSendsTheFilesAsTheyAre) {
  const auto dir =
      std::filesystem::temp_directory_path() / absl::StrCat("visionload_workload_test_", getpid());
  std::filesystem::create_directories(dir);
  const auto rgb = SyntheticPixels(8, 8, 1);
  std::ofstream(dir / "b.PNG", std::ios::binary) << *EncodePng(rgb, 8, 8);
  std::ofstream(dir / "a.jpg", std::ios::binary) << *EncodeJpeg(rgb, 8, 8, 90);
  std::ofstream(dir / "notes.txt") << "not an image";
  WorkloadOptions o;
  o.input = dir.string();
  auto w = Workload::Create(o);
  ASSERT_TRUE(w.ok()) << w.status();
  // Sorted by name: a.jpg first.
  EXPECT_EQ(Assemble(**w, 0, "x").images(0).encoded(), *EncodeJpeg(rgb, 8, 8, 90));
  EXPECT_EQ(Assemble(**w, 1, "x").images(0).encoded(), *EncodePng(rgb, 8, 8));
  EXPECT_EQ(Assemble(**w, 2, "x").images(0).encoded(), *EncodeJpeg(rgb, 8, 8, 90));
  EXPECT_NE((*w)->Describe().find("2 files"), std::string::npos);

  std::filesystem::remove(dir / "a.jpg");
  std::filesystem::remove(dir / "b.PNG");
  EXPECT_EQ(Workload::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(Workload::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WorkloadTest, RejectsBadOptions) {
  WorkloadOptions o;
  o.images_per_request = 0;
  EXPECT_FALSE(Workload::Create(o).ok());
  o.images_per_request = 1;
  o.width = 0;
  EXPECT_FALSE(Workload::Create(o).ok());
  o.width = 8;
  o.distinct_images = 0;
  EXPECT_FALSE(Workload::Create(o).ok());
  EXPECT_FALSE(ParseEncoding("webp").ok());
  EXPECT_EQ(*ParseEncoding("u8"), Encoding::kRawU8);
}

}  // namespace
}  // namespace visionserve::loadtest
