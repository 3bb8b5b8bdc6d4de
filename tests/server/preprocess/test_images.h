#pragma once

// Test-only image synthesis and encoding (TurboJPEG and libspng encoders). Header-only because
// the test glob compiles only *_test.cc; the libraries come in through visionserve_preprocess.

#include <spng.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace visionserve::preprocess::testing {

// A deterministic RGB pattern: gradients, a checkerboard texture and (optionally) noise, so
// resampling has edges, smooth areas and high frequencies to get wrong.
inline std::vector<uint8_t> MakeRgb(int width, int height, uint32_t seed, int noise = 24) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> jitter(-noise, noise);
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const int checker = ((x / 7 + y / 5) % 2) ? 60 : 0;
      const int base[3] = {x * 255 / std::max(width - 1, 1), y * 255 / std::max(height - 1, 1),
                           (x + y) * 127 / std::max(width + height - 2, 1) + checker};
      for (int c = 0; c < 3; ++c) {
        const int v = base[c] + (noise > 0 ? jitter(rng) : 0);
        rgb[(static_cast<size_t>(y) * width + x) * 3 + c] =
            static_cast<uint8_t>(std::clamp(v, 0, 255));
      }
    }
  }
  return rgb;
}

// Uniform random bytes: the worst case for rounding differences in resampling.
inline std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng() >> 24);
  return out;
}

inline std::vector<uint8_t> EncodeJpeg(std::span<const uint8_t> pixels, int width, int height,
                                       int pixel_format = TJPF_RGB, int subsamp = TJSAMP_444,
                                       int quality = 100, int flags = TJFLAG_ACCURATEDCT) {
  tjhandle handle = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(handle, pixels.data(), width, 0, height, pixel_format, &buf, &size,
                             subsamp, quality, flags);
  std::string error = rc != 0 ? tjGetErrorStr2(handle) : "";
  tjDestroy(handle);
  if (rc != 0) throw std::runtime_error("tjCompress2: " + error);
  std::vector<uint8_t> out(buf, buf + size);
  tjFree(buf);
  return out;
}

struct PngOptions {
  int color_type = SPNG_COLOR_TYPE_TRUECOLOR;
  int bit_depth = 8;
  bool interlace = false;
  std::vector<spng_plte_entry> palette;  // for SPNG_COLOR_TYPE_INDEXED
  std::vector<uint8_t> trns_alpha;       // palette alpha (tRNS), indexed only
  bool trns_grey = false;                // a tRNS grey key, grey only (value 0)
};

inline int PngChannels(int color_type) {
  switch (color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE:
    case SPNG_COLOR_TYPE_INDEXED:
      return 1;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA:
      return 2;
    case SPNG_COLOR_TYPE_TRUECOLOR:
      return 3;
    default:
      return 4;
  }
}

// `samples` holds width * height * channels unpacked sample values (< 2^bit_depth).
inline std::vector<uint8_t> EncodePng(const std::vector<uint16_t>& samples, int width, int height,
                                      const PngOptions& opt) {
  const int channels = PngChannels(opt.color_type);
  const size_t row_samples = static_cast<size_t>(width) * channels;
  const size_t row_bytes = (row_samples * opt.bit_depth + 7) / 8;
  std::vector<uint8_t> raw(row_bytes * height, 0);
  for (int y = 0; y < height; ++y) {
    uint8_t* row = raw.data() + y * row_bytes;
    for (size_t i = 0; i < row_samples; ++i) {
      const uint16_t v = samples[y * row_samples + i];
      if (opt.bit_depth == 16) {
        std::memcpy(row + 2 * i, &v, 2);  // SPNG_FMT_PNG is host-endian
      } else if (opt.bit_depth == 8) {
        row[i] = static_cast<uint8_t>(v);
      } else {
        const size_t bit = i * opt.bit_depth;
        row[bit / 8] |= static_cast<uint8_t>(v << (8 - opt.bit_depth - bit % 8));
      }
    }
  }
  spng_ctx* ctx = spng_ctx_new(SPNG_CTX_ENCODER);
  spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
  spng_ihdr ihdr{};
  ihdr.width = width;
  ihdr.height = height;
  ihdr.bit_depth = static_cast<uint8_t>(opt.bit_depth);
  ihdr.color_type = static_cast<uint8_t>(opt.color_type);
  ihdr.interlace_method = opt.interlace ? SPNG_INTERLACE_ADAM7 : SPNG_INTERLACE_NONE;
  spng_set_ihdr(ctx, &ihdr);
  if (!opt.palette.empty()) {
    spng_plte plte{};
    plte.n_entries = static_cast<uint32_t>(opt.palette.size());
    for (size_t i = 0; i < opt.palette.size(); ++i) plte.entries[i] = opt.palette[i];
    spng_set_plte(ctx, &plte);
  }
  if (!opt.trns_alpha.empty() || opt.trns_grey) {
    spng_trns trns{};
    trns.n_type3_entries = static_cast<uint32_t>(opt.trns_alpha.size());
    for (size_t i = 0; i < opt.trns_alpha.size(); ++i) trns.type3_alpha[i] = opt.trns_alpha[i];
    spng_set_trns(ctx, &trns);
  }
  int rc = spng_encode_image(ctx, raw.data(), raw.size(), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
  size_t size = 0;
  int err = 0;
  void* png = rc == 0 ? spng_get_png_buffer(ctx, &size, &err) : nullptr;
  std::string error = spng_strerror(rc != 0 ? rc : err);
  spng_ctx_free(ctx);
  if (png == nullptr) throw std::runtime_error("spng encode: " + error);
  std::vector<uint8_t> out(static_cast<uint8_t*>(png), static_cast<uint8_t*>(png) + size);
  std::free(png);
  return out;
}

// An 8-bit RGB PNG of `rgb`.
inline std::vector<uint8_t> EncodeRgbPng(std::span<const uint8_t> rgb, int width, int height) {
  return EncodePng(std::vector<uint16_t>(rgb.begin(), rgb.end()), width, height, PngOptions{});
}

// CRC-32 (PNG/zlib polynomial), for hand-crafted chunks.
inline uint32_t Crc32(std::span<const uint8_t> data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t b : data) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// One PNG flavour, with the RGB8 that PIL's Image.open(f).convert("RGB") gives for it.
struct PngCase {
  std::string name;
  int color_type = SPNG_COLOR_TYPE_TRUECOLOR;
  int bit_depth = 8;
  bool interlace = false;
  bool trns = false;
};

inline std::vector<PngCase> AllPngCases() {
  using C = PngCase;
  return {
      C{"grey1", SPNG_COLOR_TYPE_GRAYSCALE, 1},
      C{"grey2", SPNG_COLOR_TYPE_GRAYSCALE, 2},
      C{"grey4", SPNG_COLOR_TYPE_GRAYSCALE, 4},
      C{"grey8", SPNG_COLOR_TYPE_GRAYSCALE, 8},
      C{"grey8_trns", SPNG_COLOR_TYPE_GRAYSCALE, 8, false, true},
      C{"grey16", SPNG_COLOR_TYPE_GRAYSCALE, 16},
      C{"grey16_interlaced", SPNG_COLOR_TYPE_GRAYSCALE, 16, true},
      C{"grey_alpha8", SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 8},
      C{"grey_alpha16", SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 16},
      C{"rgb8", SPNG_COLOR_TYPE_TRUECOLOR, 8},
      C{"rgb8_interlaced", SPNG_COLOR_TYPE_TRUECOLOR, 8, true},
      C{"rgb16", SPNG_COLOR_TYPE_TRUECOLOR, 16},
      C{"rgba8", SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8},
      C{"rgba16", SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 16},
      C{"palette1", SPNG_COLOR_TYPE_INDEXED, 1},
      C{"palette2", SPNG_COLOR_TYPE_INDEXED, 2},
      C{"palette4", SPNG_COLOR_TYPE_INDEXED, 4},
      C{"palette8", SPNG_COLOR_TYPE_INDEXED, 8},
      C{"palette8_trns", SPNG_COLOR_TYPE_INDEXED, 8, false, true},
      C{"palette4_interlaced", SPNG_COLOR_TYPE_INDEXED, 4, true},
  };
}

struct MadePng {
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> expected_rgb;  // what PIL's convert("RGB") yields
};

// Random samples of the case's type (16-bit grey mixes values below and above 255, since PIL
// clips those), encoded, plus the expected RGB8 computed from PIL's conversion rules.
inline MadePng MakePng(const PngCase& c, int width, int height, uint32_t seed) {
  std::mt19937 rng(seed);
  const int channels = PngChannels(c.color_type);
  const size_t pixels = static_cast<size_t>(width) * height;
  const uint32_t max_value = (1u << c.bit_depth) - 1;
  PngOptions opt{c.color_type, c.bit_depth, c.interlace, {}, {}, false};
  if (c.color_type == SPNG_COLOR_TYPE_INDEXED) {
    for (uint32_t i = 0; i <= max_value; ++i) {
      opt.palette.push_back(spng_plte_entry{static_cast<uint8_t>(rng()),
                                            static_cast<uint8_t>(rng()),
                                            static_cast<uint8_t>(rng()), 255});
    }
    if (c.trns) {
      for (uint32_t i = 0; i <= max_value; ++i)
        opt.trns_alpha.push_back(static_cast<uint8_t>(rng()));
    }
  } else if (c.trns) {
    opt.trns_grey = true;
  }
  std::vector<uint16_t> samples(pixels * channels);
  for (auto& v : samples) {
    v = static_cast<uint16_t>(rng() % (max_value + 1));
    if (c.bit_depth == 16 && c.color_type == SPNG_COLOR_TYPE_GRAYSCALE && (rng() & 1)) v &= 0x1FF;
  }
  MadePng out;
  out.bytes = EncodePng(samples, width, height, opt);
  out.expected_rgb.resize(pixels * 3);
  for (size_t p = 0; p < pixels; ++p) {
    const uint16_t* s = &samples[p * channels];
    uint8_t rgb[3];
    const auto to8 = [&](uint16_t v) -> uint8_t {
      if (c.bit_depth == 16) return static_cast<uint8_t>(v >> 8);
      return static_cast<uint8_t>(v * 255 / max_value);  // bit replication == exact scaling
    };
    switch (c.color_type) {
      case SPNG_COLOR_TYPE_GRAYSCALE:
        rgb[0] =
            c.bit_depth == 16 ? static_cast<uint8_t>(std::min<uint16_t>(s[0], 255)) : to8(s[0]);
        rgb[1] = rgb[2] = rgb[0];
        break;
      case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA:
        rgb[0] = rgb[1] = rgb[2] = to8(s[0]);
        break;
      case SPNG_COLOR_TYPE_INDEXED:
        rgb[0] = opt.palette[s[0]].red;
        rgb[1] = opt.palette[s[0]].green;
        rgb[2] = opt.palette[s[0]].blue;
        break;
      default:
        for (int k = 0; k < 3; ++k) rgb[k] = to8(s[k]);
    }
    std::memcpy(&out.expected_rgb[p * 3], rgb, 3);
  }
  return out;
}

}  // namespace visionserve::preprocess::testing
