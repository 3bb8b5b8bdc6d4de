#include "loadtest/workload.h"

#include <spng.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/preprocess/half.h"

namespace visionserve::loadtest {

namespace {

absl::Status ParseInlinePolicy(absl::string_view body, v1::InlinePolicy* p) {
  if (absl::StripAsciiWhitespace(body).empty()) return absl::OkStatus();
  for (absl::string_view kv : absl::StrSplit(body, ',')) {
    kv = absl::StripAsciiWhitespace(kv);
    const size_t eq = kv.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("inline policy: \"", kv, "\" is not KEY=VALUE"));
    }
    const absl::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
    double number = 0;
    if (key == "budget_ms" || key == "min_top1") {
      if (!absl::SimpleAtod(value, &number) || !std::isfinite(number) || number < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("inline policy: ", key, " wants a number >= 0, got \"", value, "\""));
      }
      if (key == "budget_ms") {
        p->set_latency_budget_ms(number);
      } else {
        p->set_min_top1(number);
      }
    } else if (key == "objective") {
      if (value == "most_accurate") {
        p->set_objective(v1::InlinePolicy::MOST_ACCURATE);
      } else if (value == "fastest") {
        p->set_objective(v1::InlinePolicy::FASTEST);
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "inline policy: objective is most_accurate or fastest, got \"", value, "\""));
      }
    } else if (key == "on_miss") {
      if (value == "reject") {
        p->set_on_miss(v1::InlinePolicy::REJECT);
      } else if (value == "serve_fastest") {
        p->set_on_miss(v1::InlinePolicy::SERVE_FASTEST);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("inline policy: on_miss is reject or serve_fastest, got \"", value, "\""));
      }
    } else if (key == "families") {
      for (absl::string_view f : absl::StrSplit(value, '|', absl::SkipEmpty())) {
        p->add_families(std::string(f));
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("inline policy: unknown key \"", key,
                       "\" (budget_ms, min_top1, objective, on_miss, families)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string FormatBytes(double bytes) {
  if (bytes >= 1 << 20) return absl::StrFormat("%.1f MiB", bytes / (1 << 20));
  if (bytes >= 1 << 10) return absl::StrFormat("%.1f KiB", bytes / (1 << 10));
  return absl::StrFormat("%.0f B", bytes);
}

}  // namespace

absl::StatusOr<std::vector<Target>> ParseMix(absl::string_view spec) {
  std::vector<Target> out;
  for (absl::string_view entry : absl::StrSplit(spec, ';', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    Target t;
    t.spec = std::string(entry);
    const size_t at = entry.rfind('@');
    if (at != absl::string_view::npos) {
      if (!absl::SimpleAtod(entry.substr(at + 1), &t.weight) || !std::isfinite(t.weight) ||
          t.weight <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("mix entry \"", entry, "\": the weight after @ must be a number > 0"));
      }
      entry = entry.substr(0, at);
    }
    if (entry == "default") {
      t.kind = Target::Kind::kDefault;
    } else if (absl::ConsumePrefix(&entry, "model:")) {
      t.kind = Target::Kind::kModel;
      t.name = std::string(entry);
    } else if (absl::ConsumePrefix(&entry, "policy:")) {
      t.kind = Target::Kind::kPolicy;
      t.name = std::string(entry);
    } else if (absl::ConsumePrefix(&entry, "inline:")) {
      t.kind = Target::Kind::kInline;
      if (absl::Status s = ParseInlinePolicy(entry, &t.inline_policy); !s.ok()) return s;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "mix entry \"", t.spec, "\": want default, model:NAME, policy:NAME or inline:K=V,..."));
    }
    if ((t.kind == Target::Kind::kModel || t.kind == Target::Kind::kPolicy) && t.name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("mix entry \"", t.spec, "\" names nothing"));
    }
    out.push_back(std::move(t));
  }
  if (out.empty()) return absl::InvalidArgumentError("empty mix");
  return out;
}

absl::StatusOr<Encoding> ParseEncoding(absl::string_view name) {
  if (name == "jpeg") return Encoding::kJpeg;
  if (name == "png") return Encoding::kPng;
  if (name == "u8") return Encoding::kRawU8;
  if (name == "f32") return Encoding::kRawF32;
  if (name == "f16") return Encoding::kRawF16;
  return absl::InvalidArgumentError(
      absl::StrCat("encoding must be jpeg, png, u8, f32 or f16, got \"", name, "\""));
}

const char* EncodingName(Encoding e) {
  switch (e) {
    case Encoding::kJpeg:
      return "jpeg";
    case Encoding::kPng:
      return "png";
    case Encoding::kRawU8:
      return "u8";
    case Encoding::kRawF32:
      return "f32";
    case Encoding::kRawF16:
      return "f16";
  }
  return "?";
}

std::vector<uint8_t> SyntheticPixels(int width, int height, uint32_t seed) {
  std::vector<uint8_t> p(static_cast<size_t>(width) * height * 3);
  std::mt19937 rng(seed);
  const int phase = static_cast<int>(seed % 97);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) {
        p[(static_cast<size_t>(y) * width + x) * 3 + c] =
            static_cast<uint8_t>((x * (c + 1) + y * 2 + phase + rng() % 16) & 255);
      }
    }
  }
  return p;
}

absl::StatusOr<std::string> EncodeJpeg(const std::vector<uint8_t>& rgb, int width, int height,
                                       int quality) {
  tjhandle tj = tjInitCompress();
  if (!tj) return absl::InternalError("tjInitCompress failed");
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(tj, rgb.data(), width, 0, height, TJPF_RGB, &out, &size, TJSAMP_420,
                             quality, TJFLAG_ACCURATEDCT);
  std::string s;
  absl::Status status;
  if (rc != 0) {
    status = absl::InternalError(absl::StrCat("JPEG encoding failed: ", tjGetErrorStr2(tj)));
  } else {
    s.assign(reinterpret_cast<char*>(out), size);
  }
  tjFree(out);
  tjDestroy(tj);
  if (!status.ok()) return status;
  return s;
}

absl::StatusOr<std::string> EncodePng(const std::vector<uint8_t>& rgb, int width, int height) {
  spng_ctx* ctx = spng_ctx_new(SPNG_CTX_ENCODER);
  if (!ctx) return absl::InternalError("spng_ctx_new failed");
  spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
  spng_ihdr ihdr{};
  ihdr.width = static_cast<uint32_t>(width);
  ihdr.height = static_cast<uint32_t>(height);
  ihdr.bit_depth = 8;
  ihdr.color_type = SPNG_COLOR_TYPE_TRUECOLOR;
  int rc = spng_set_ihdr(ctx, &ihdr);
  if (rc == 0) {
    rc = spng_encode_image(ctx, rgb.data(), rgb.size(), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
  }
  std::string s;
  if (rc == 0) {
    size_t size = 0;
    void* buf = spng_get_png_buffer(ctx, &size, &rc);
    if (buf) s.assign(static_cast<char*>(buf), size);
    free(buf);
  }
  spng_ctx_free(ctx);
  if (rc != 0) return absl::InternalError(absl::StrCat("PNG encoding failed: ", spng_strerror(rc)));
  return s;
}

absl::StatusOr<std::unique_ptr<Workload>> Workload::Create(const WorkloadOptions& o) {
  if (o.images_per_request < 1) {
    return absl::InvalidArgumentError("images per request must be at least 1");
  }
  std::unique_ptr<Workload> w(new Workload());
  w->images_per_request_ = o.images_per_request;
  w->seed_ = o.seed;

  // Targets.
  w->targets_ = o.targets;
  if (w->targets_.empty()) {
    Target t;
    t.spec = "default";
    w->targets_.push_back(std::move(t));
  }
  double total = 0;
  for (const Target& t : w->targets_) total += t.weight;
  double running = 0;
  for (const Target& t : w->targets_) {
    running += t.weight / total;
    w->cumulative_weight_.push_back(running);
    v1::ClassifyRequest part;
    switch (t.kind) {
      case Target::Kind::kDefault:
        break;
      case Target::Kind::kModel:
        part.set_model(t.name);
        break;
      case Target::Kind::kPolicy:
        part.set_policy(t.name);
        break;
      case Target::Kind::kInline:
        *part.mutable_inline_policy() = t.inline_policy;
        break;
    }
    part.set_top_k(o.top_k);
    part.set_priority(o.priority);
    w->target_parts_.push_back(part.SerializeAsString());
  }
  w->cumulative_weight_.back() = 1.0;

  // Images.
  std::vector<v1::Image> images;
  std::string what;
  if (o.input == "synthetic") {
    if (o.width < 1 || o.height < 1 || o.width > 16384 || o.height > 16384) {
      return absl::InvalidArgumentError("synthetic image size must be 1..16384 per side");
    }
    if (o.distinct_images < 1) return absl::InvalidArgumentError("distinct images must be >= 1");
    const bool preprocessed = o.encoding == Encoding::kRawF32 || o.encoding == Encoding::kRawF16;
    if (preprocessed && o.width != o.height) {
      return absl::InvalidArgumentError(
          "f32 and f16 tensors are preprocessed model inputs: width and height must both be the "
          "model's input size");
    }
    for (int i = 0; i < o.distinct_images; ++i) {
      const uint32_t seed = static_cast<uint32_t>(o.seed * 1000003u + static_cast<uint64_t>(i));
      v1::Image img;
      if (preprocessed) {
        std::mt19937 rng(seed);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        std::vector<float> v(static_cast<size_t>(o.width) * o.height * 3);
        for (float& x : v) x = normal(rng);
        v1::RawTensor* t = img.mutable_tensor();
        for (int64_t d : {int64_t{o.height}, int64_t{o.width}, int64_t{3}}) t->add_shape(d);
        if (o.encoding == Encoding::kRawF16) {
          t->set_dtype(v1::RawTensor::FLOAT16);
          t->set_data(preprocess::FloatsToHalfBytes(v));
        } else {
          t->set_dtype(v1::RawTensor::FLOAT32);
          t->set_data(
              std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
        }
      } else {
        const std::vector<uint8_t> rgb = SyntheticPixels(o.width, o.height, seed);
        if (o.encoding == Encoding::kRawU8) {
          v1::RawTensor* t = img.mutable_tensor();
          t->set_dtype(v1::RawTensor::UINT8);
          for (int64_t d : {int64_t{o.height}, int64_t{o.width}, int64_t{3}}) t->add_shape(d);
          t->set_data(std::string(rgb.begin(), rgb.end()));
        } else {
          auto encoded = o.encoding == Encoding::kJpeg
                             ? EncodeJpeg(rgb, o.width, o.height, o.jpeg_quality)
                             : EncodePng(rgb, o.width, o.height);
          if (!encoded.ok()) return encoded.status();
          img.set_encoded(std::move(*encoded));
        }
      }
      images.push_back(std::move(img));
    }
    what = absl::StrFormat("%d synthetic %dx%d %s images", o.distinct_images, o.width, o.height,
                           EncodingName(o.encoding));
  } else {
    std::error_code ec;
    if (!std::filesystem::is_directory(o.input, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("input \"", o.input, "\" is neither \"synthetic\" nor a folder"));
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(o.input, ec)) {
      if (!entry.is_regular_file()) continue;
      const std::string ext = absl::AsciiStrToLower(entry.path().extension().string());
      if (ext == ".jpg" || ext == ".jpeg" || ext == ".png") files.push_back(entry.path());
    }
    if (ec) return absl::InternalError(absl::StrCat("cannot list ", o.input, ": ", ec.message()));
    if (files.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("no .jpg, .jpeg or .png files in ", o.input));
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      auto bytes = ReadFile(f);
      if (!bytes.ok()) return bytes.status();
      v1::Image img;
      img.set_encoded(std::move(*bytes));
      images.push_back(std::move(img));
    }
    what = absl::StrFormat("%d files from %s", files.size(), o.input);
  }

  // Groups of images_per_request consecutive images (wrapping), together covering every image.
  const size_t n = images.size();
  const size_t per = static_cast<size_t>(o.images_per_request);
  const size_t groups = (n + per - 1) / per;
  for (size_t g = 0; g < groups; ++g) {
    v1::ClassifyRequest part;
    for (size_t k = 0; k < per; ++k) *part.add_images() = images[(g * per + k) % n];
    w->image_parts_.push_back(part.SerializeAsString());
  }

  std::string targets;
  for (const Target& t : w->targets_) {
    absl::StrAppend(
        &targets, targets.empty() ? "" : ", ", t.spec,
        w->targets_.size() > 1 ? absl::StrFormat(" (%.0f%%)", 100 * t.weight / total) : "");
  }
  w->description_ =
      absl::StrFormat("%s, %d per request (%s each), target %s", what, o.images_per_request,
                      FormatBytes(w->mean_request_bytes()), targets);
  return w;
}

Workload::Request Workload::Pick(uint64_t seq) const {
  Request r;
  const double u =
      static_cast<double>(SplitMix64(seed_ * 0x632BE59BD9B4E019ull ^ seq) >> 11) * 0x1.0p-53;
  r.target =
      static_cast<int>(std::upper_bound(cumulative_weight_.begin(), cumulative_weight_.end(), u) -
                       cumulative_weight_.begin());
  r.target = std::min(r.target, static_cast<int>(targets_.size()) - 1);
  r.target_part = target_parts_[static_cast<size_t>(r.target)];
  r.images_part = image_parts_[seq % image_parts_.size()];
  r.images = images_per_request_;
  return r;
}

std::string Workload::RequestIdPart(absl::string_view request_id) {
  v1::ClassifyRequest part;
  part.set_request_id(std::string(request_id));
  return part.SerializeAsString();
}

double Workload::mean_request_bytes() const {
  double bytes = 0;
  for (const auto& p : image_parts_) bytes += static_cast<double>(p.size());
  return image_parts_.empty() ? 0 : bytes / static_cast<double>(image_parts_.size());
}

std::string Workload::Describe() const { return description_; }

}  // namespace visionserve::loadtest
