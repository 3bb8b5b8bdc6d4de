// Bit-exact parity with Pillow 9.4 (Debian python3-pil) and torchvision 0.14's PIL path.
//
// Each test writes its inputs to a temporary directory, runs tools/pil_reference.py once with
// /usr/bin/python3 (override: VISIONSERVE_PYTHON; source root: VISIONSERVE_SOURCE_DIR, else
// found from this file's path) and compares bytes. No golden files: nothing to regenerate.
// Without python3-pil these tests FAIL with the script's message; they never skip.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/preprocess/preprocess.h"
#include "tests/server/preprocess/test_images.h"

namespace visionserve::preprocess {
namespace {

namespace fs = std::filesystem;

fs::path SourceRoot() {
  if (const char* env = std::getenv("VISIONSERVE_SOURCE_DIR")) return env;
  // tests/server/preprocess/pil_parity_test.cc -> the repository root.
  return fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path();
}

void WriteFile(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> ReadFile(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// A scratch directory plus a job file for tools/pil_reference.py.
class PillowJobs {
 public:
  explicit PillowJobs(const std::string& name)
      : dir_(fs::path(::testing::TempDir()) /
             ("pil_parity_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~PillowJobs() { fs::remove_all(dir_); }

  fs::path Path(const std::string& name) const { return dir_ / name; }

  // Adds a job line whose output goes to Path(out).
  void Add(const std::string& line) { jobs_ << line << "\n"; }

  // Runs Pillow over all jobs; fails the test (with the script's output) if it cannot.
  ::testing::AssertionResult Run() {
    const fs::path job_file = dir_ / "jobs.txt", log = dir_ / "log.txt";
    {
      std::ofstream f(job_file);
      f << jobs_.str();
    }
    const char* python = std::getenv("VISIONSERVE_PYTHON");
    const fs::path script = SourceRoot() / "tools" / "pil_reference.py";
    if (!fs::exists(script)) {
      return ::testing::AssertionFailure()
             << "missing " << script << " (set VISIONSERVE_SOURCE_DIR)";
    }
    const std::string cmd = std::string(python ? python : "/usr/bin/python3") + " '" +
                            script.string() + "' '" + job_file.string() + "' > '" + log.string() +
                            "' 2>&1";
    const int rc = std::system(cmd.c_str());
    const std::vector<uint8_t> out = ReadFile(log);
    const std::string text(out.begin(), out.end());
    if (rc != 0) {
      return ::testing::AssertionFailure()
             << "Pillow reference failed (exit " << rc << "); this test needs Debian's "
             << "/usr/bin/python3 with python3-pil. Command: " << cmd << "\nOutput:\n"
             << text;
    }
    return ::testing::AssertionSuccess() << text;
  }

 private:
  fs::path dir_;
  std::ostringstream jobs_;
};

// Number of differing bytes and the largest difference.
std::string DiffSummary(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want) {
  if (got.size() != want.size()) {
    return "size " + std::to_string(got.size()) + " vs Pillow " + std::to_string(want.size());
  }
  size_t n = 0;
  int max_abs = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const int d = std::abs(int{got[i]} - int{want[i]});
    n += d != 0;
    max_abs = std::max(max_abs, d);
  }
  return std::to_string(n) + " of " + std::to_string(got.size()) + " bytes differ, max |diff| " +
         std::to_string(max_abs);
}

TEST(DecodePilParityTest, DecodesEveryFormatLikePillow) {
  PillowJobs jobs("decode");
  struct Item {
    std::string name;
    std::vector<uint8_t> bytes;
    int min_short_side = 0;
  };
  std::vector<Item> items;
  for (const testing::PngCase& c : testing::AllPngCases()) {
    items.push_back({c.name + ".png", testing::MakePng(c, 37, 23, 3).bytes});
  }
  const int w = 61, h = 45;
  const auto rgb = testing::MakeRgb(w, h, 2);
  items.push_back({"q100_444.jpg", testing::EncodeJpeg(rgb, w, h, TJPF_RGB, TJSAMP_444, 100)});
  items.push_back({"q90_420.jpg", testing::EncodeJpeg(rgb, w, h, TJPF_RGB, TJSAMP_420, 90, 0)});
  items.push_back({"q75_422.jpg", testing::EncodeJpeg(rgb, w, h, TJPF_RGB, TJSAMP_422, 75, 0)});
  items.push_back({"q80_440.jpg", testing::EncodeJpeg(rgb, w, h, TJPF_RGB, TJSAMP_440, 80, 0)});
  items.push_back({"progressive.jpg",
                   testing::EncodeJpeg(rgb, w, h, TJPF_RGB, TJSAMP_420, 85, TJFLAG_PROGRESSIVE)});
  std::vector<uint8_t> grey(w * h), cmyk(w * h * 4);
  for (int p = 0; p < w * h; ++p) {
    grey[p] = rgb[3 * p + 1];
    for (int c = 0; c < 3; ++c) cmyk[4 * p + c] = rgb[3 * p + c];
    cmyk[4 * p + 3] = static_cast<uint8_t>(255 - p % 200);
  }
  items.push_back({"grey.jpg", testing::EncodeJpeg(grey, w, h, TJPF_GRAY, TJSAMP_GRAY, 90)});
  items.push_back({"cmyk.jpg", testing::EncodeJpeg(cmyk, w, h, TJPF_CMYK, TJSAMP_420, 90, 0)});
  auto junk = testing::EncodeJpeg(rgb, w, h, TJPF_RGB, TJSAMP_420, 90, 0);
  junk.insert(junk.end() - 2, {0x12, 0x34, 0x56});  // a libjpeg warning Pillow decodes through
  items.push_back({"extraneous_bytes.jpg", junk});
  for (size_t i = 0; i < items.size(); ++i) {
    WriteFile(jobs.Path(items[i].name), items[i].bytes);
    jobs.Add("decode " + jobs.Path(items[i].name).string() + " " +
             jobs.Path(items[i].name + ".rgb").string());
  }
  // DCT-scaled decodes against Pillow's draft(), which asks libjpeg for the same 1/2..1/8.
  const int sw = 320, sh = 240;
  const auto big =
      testing::EncodeJpeg(testing::MakeRgb(sw, sh, 5), sw, sh, TJPF_RGB, TJSAMP_420, 90, 0);
  WriteFile(jobs.Path("big.jpg"), big);
  const std::pair<int, int> scales[] = {{2, 120}, {4, 60}, {8, 30}};  // {denominator, min side}
  for (auto [scale, min_side] : scales) {
    jobs.Add("draft " + jobs.Path("big.jpg").string() + " " + std::to_string(scale) + " " +
             jobs.Path("draft" + std::to_string(scale) + ".rgb").string());
  }
  ASSERT_TRUE(jobs.Run());

  for (const Item& item : items) {
    absl::StatusOr<Image> img = Decode(item.bytes, Limits{});
    ASSERT_TRUE(img.ok()) << item.name << ": " << img.status();
    const std::vector<uint8_t> want = ReadFile(jobs.Path(item.name + ".rgb"));
    EXPECT_TRUE(img->rgb == want) << item.name << ": " << DiffSummary(img->rgb, want);
  }
  for (auto [scale, min_side] : scales) {
    absl::StatusOr<Image> img = Decode(big, Limits{}, min_side);
    ASSERT_TRUE(img.ok()) << img.status();
    EXPECT_EQ(img->width, sw / scale);
    const std::vector<uint8_t> want = ReadFile(jobs.Path("draft" + std::to_string(scale) + ".rgb"));
    EXPECT_TRUE(img->rgb == want) << "1/" << scale << ": " << DiffSummary(img->rgb, want);
  }
}

struct ResizeCase {
  int w, h;
  int noise;  // -1: uniform random bytes (worst case for rounding)
};

class ResizePilParityTest : public ::testing::TestWithParam<Interpolation> {};

TEST_P(ResizePilParityTest, ResizeAndCenterCropMatchPillowExactly) {
  const Interpolation interp = GetParam();
  const char* filter = interp == Interpolation::kBicubic ? "bicubic" : "bilinear";
  PillowJobs jobs(filter);
  // Odd sizes, exact fits, upscaling (small -> 256), extreme aspect ratios, both orientations.
  const ResizeCase sizes[] = {
      {500, 375, -1}, {375, 500, -1}, {257, 259, -1}, {640, 480, 20}, {333, 251, -1},
      {1023, 769, 8}, {256, 300, -1}, {224, 224, -1}, {50, 40, -1},   {13, 17, -1},
      {1, 1, -1},     {2, 500, -1},   {1000, 7, -1},  {3, 400, 30},   {300, 299, 0},
  };
  const std::pair<int, int> specs[] = {{256, 224}, {320, 300}, {232, 224}, {200, 224}, {7, 5}};
  struct Job {
    ResizeCase size;
    ClassifySpec spec;
    std::string in, out;
  };
  std::vector<Job> all;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    const ResizeCase& c = sizes[i];
    const std::vector<uint8_t> src = c.noise < 0
                                         ? testing::RandomBytes(size_t(c.w) * c.h * 3, 40 + i)
                                         : testing::MakeRgb(c.w, c.h, 40 + i, c.noise);
    const std::string in = jobs.Path("in" + std::to_string(i) + ".rgb").string();
    WriteFile(in, src);
    for (auto [resize, crop] : specs) {
      Job job{c, ClassifySpec{}, in, ""};
      job.spec.resize_size = resize;
      job.spec.crop_size = crop;
      job.spec.interpolation = interp;
      job.out = jobs.Path("out" + std::to_string(all.size()) + ".rgb").string();
      jobs.Add("resize " + in + " " + std::to_string(c.w) + " " + std::to_string(c.h) + " " +
               std::to_string(resize) + " " + std::to_string(crop) + " " + filter + " " + job.out);
      all.push_back(job);
    }
  }
  ASSERT_TRUE(jobs.Run());

  for (const Job& job : all) {
    const std::vector<uint8_t> src = ReadFile(job.in);
    absl::StatusOr<Image> got = ResizeAndCenterCrop(Image{job.size.w, job.size.h, src}, job.spec);
    ASSERT_TRUE(got.ok()) << got.status();
    const std::vector<uint8_t> want = ReadFile(job.out);
    EXPECT_TRUE(got->rgb == want) << job.size.w << "x" << job.size.h << " Resize("
                                  << job.spec.resize_size << ") CenterCrop(" << job.spec.crop_size
                                  << ") " << filter << ": " << DiffSummary(got->rgb, want);
  }
}

INSTANTIATE_TEST_SUITE_P(Filters, ResizePilParityTest,
                         ::testing::Values(Interpolation::kBilinear, Interpolation::kBicubic),
                         [](const auto& info) {
                           return info.param == Interpolation::kBicubic ? "Bicubic" : "Bilinear";
                         });

}  // namespace
}  // namespace visionserve::preprocess
