#include <spng.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "server/preprocess/checks.h"
#include "server/preprocess/preprocess.h"
#include "server/preprocess/resample.h"

namespace visionserve::preprocess {
namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

bool StartsWith(std::span<const uint8_t> bytes, std::string_view magic) {
  return bytes.size() >= magic.size() && std::memcmp(bytes.data(), magic.data(), magic.size()) == 0;
}

// Names a few formats we do not accept, so the error tells the client what it sent.
std::string_view OtherFormatName(std::span<const uint8_t> bytes) {
  if (StartsWith(bytes, "GIF87a") || StartsWith(bytes, "GIF89a")) return "GIF";
  if (StartsWith(bytes, "RIFF") && bytes.size() >= 12 &&
      std::memcmp(bytes.data() + 8, "WEBP", 4) == 0) {
    return "WebP";
  }
  if (StartsWith(bytes, "BM")) return "BMP";
  if (StartsWith(bytes, std::string_view("II*\0", 4)) ||
      StartsWith(bytes, std::string_view("MM\0*", 4))) {
    return "TIFF";
  }
  if (bytes.size() >= 12 && std::memcmp(bytes.data() + 4, "ftyp", 4) == 0) return "HEIF/AVIF";
  return "";
}

// ---------------------------------------------------------------------------------------------
// JPEG (TurboJPEG). One handle per call: tjInitDecompress is cheap next to a decode and this
// keeps the function trivially reentrant.

struct TjDeleter {
  void operator()(void* handle) const { tjDestroy(handle); }
};
using TjHandle = std::unique_ptr<void, TjDeleter>;

absl::Status JpegError(tjhandle handle) {
  return absl::InvalidArgumentError(absl::StrCat(
      "JPEG data is truncated or corrupt (libjpeg-turbo: ", std::string(tjGetErrorStr2(handle)),
      ")"));
}

// What a walk over the JPEG marker segments before the first scan finds. Only used to word
// errors and to spot truncation; libjpeg does the real parsing.
struct JpegLayout {
  std::optional<Size2> frame;      // from the first SOFn
  std::optional<size_t> scan_pos;  // offset of the first SOS marker
};

JpegLayout WalkJpegMarkers(std::span<const uint8_t> bytes) {
  JpegLayout layout;
  size_t pos = 2;  // after SOI
  while (pos + 4 <= bytes.size() && bytes[pos] == 0xFF) {
    const uint8_t marker = bytes[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xDA) {
      layout.scan_pos = pos;
      break;
    }
    const size_t length = (size_t{bytes[pos + 2]} << 8) | bytes[pos + 3];
    const bool sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof && !layout.frame.has_value() && pos + 9 <= bytes.size()) {
      layout.frame =
          Size2{(bytes[pos + 7] << 8) | bytes[pos + 8], (bytes[pos + 5] << 8) | bytes[pos + 6]};
    }
    if (length < 2) break;
    pos += 2 + length;
  }
  return layout;
}

// Entropy-coded data never contains FF D9 (an FF there is always stuffed or an RSTn), so a
// complete image has an EOI after its first SOS. Trailing data after the EOI is allowed.
bool HasEoiAfterFirstScan(std::span<const uint8_t> bytes) {
  const std::optional<size_t> scan = WalkJpegMarkers(bytes).scan_pos;
  if (!scan.has_value()) return false;
  for (size_t i = *scan + 2; i + 1 < bytes.size(); ++i) {
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xD9) return true;
  }
  return false;
}

// libjpeg's non-fatal warnings (JWRN_*) that Pillow decodes through. "Premature end of JPEG
// file" is absent on purpose: Pillow reports running out of data as a truncated image.
// TurboJPEG keeps the first warning's text, or the text of a later fatal error, so a fatal
// error that follows a warning never matches this list.
bool IsTolerableJpegWarning(std::string_view message) {
  constexpr std::string_view kPrefixes[] = {
      "Corrupt JPEG data:",  // extraneous bytes before a marker, bad Huffman code, ...
      "Inconsistent progression sequence",
      "Invalid SOS parameters for sequential JPEG",
      "Warning: unknown JFIF revision number",
      "Unknown Adobe color transform code",
  };
  for (std::string_view prefix : kPrefixes) {
    if (message.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

// The scaling factor <= 1 giving the smallest shorter side that is still >= min_short_side.
tjscalingfactor ChooseJpegScale(int width, int height, int min_short_side) {
  tjscalingfactor best{1, 1};
  if (min_short_side <= 0) return best;
  int count = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&count);
  if (factors == nullptr) return best;
  const int short_side = std::min(width, height);
  int best_side = short_side;
  for (int i = 0; i < count; ++i) {
    const tjscalingfactor f = factors[i];
    if (f.num <= 0 || f.denom <= 0 || f.num > f.denom) continue;
    const int side = TJSCALED(short_side, f);
    if (side >= min_short_side && side < best_side) {
      best = f;
      best_side = side;
    }
  }
  return best;
}

// Pillow's CMYK -> RGB for a JPEG: the samples are read as Adobe-inverted ("CMYK;I"), then
// R = (255 - K) - C * (255 - K) / 255 with Pillow's rounded divide by 255.
void InvertedCmykToRgb(const uint8_t* cmyk, size_t pixels, uint8_t* rgb) {
  for (size_t p = 0; p < pixels; ++p, cmyk += 4, rgb += 3) {
    const int not_k = cmyk[3];  // 255 - (255 - raw K)
    for (int c = 0; c < 3; ++c) {
      const int ink = 255 - cmyk[c];
      const int t = ink * not_k + 128;
      const int v = not_k - (((t >> 8) + t) >> 8);
      rgb[c] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
  }
}

absl::StatusOr<Image> DecodeJpeg(std::span<const uint8_t> bytes, const Limits& limits,
                                 int min_short_side) {
  TjHandle handle(tjInitDecompress());
  if (handle == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create a JPEG decoder: ", std::string(tjGetErrorStr2(nullptr))));
  }
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  const bool header_ok = tjDecompressHeader3(handle.get(), bytes.data(), bytes.size(), &width,
                                             &height, &subsamp, &colorspace) == 0;
  if (!header_ok || width <= 0 || height <= 0) {
    // libjpeg rejects a zero-sized frame with "Empty JPEG image"; name the numbers instead.
    if (const std::optional<Size2> frame = WalkJpegMarkers(bytes).frame;
        frame.has_value() && (frame->width == 0 || frame->height == 0)) {
      return CheckDimensions("JPEG image", frame->width, frame->height, limits);
    }
    if (!header_ok) return JpegError(handle.get());
    // Data that ends before the frame header reads as tables-only and "succeeds" with 0x0.
    return absl::InvalidArgumentError(
        "JPEG data is truncated or corrupt (it ends before the frame header)");
  }
  if (absl::Status s = CheckDimensions("JPEG image", width, height, limits); !s.ok()) return s;

  const tjscalingfactor scale = ChooseJpegScale(width, height, min_short_side);
  Image img;
  img.width = TJSCALED(width, scale);
  img.height = TJSCALED(height, scale);
  const size_t pixels = static_cast<size_t>(img.width) * img.height;
  img.rgb.resize(pixels * 3);

  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  std::vector<uint8_t> cmyk_buf(cmyk ? pixels * 4 : 0);
  uint8_t* dst = cmyk ? cmyk_buf.data() : img.rgb.data();
  // Accurate IDCT and fancy upsampling are the defaults, as in Pillow; LIMITSCANS rejects
  // progressive files with an absurd number of scans (a CPU-exhaustion attack).
  const int flags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS;
  if (tjDecompress2(handle.get(), bytes.data(), bytes.size(), dst, img.width, 0, img.height,
                    cmyk ? TJPF_CMYK : TJPF_RGB, flags) != 0) {
    // After a warning the whole image was still produced; accept it when Pillow would.
    if (tjGetErrorCode(handle.get()) != TJERR_WARNING ||
        !IsTolerableJpegWarning(tjGetErrorStr2(handle.get())) || !HasEoiAfterFirstScan(bytes)) {
      return JpegError(handle.get());
    }
  }
  if (cmyk) InvertedCmykToRgb(cmyk_buf.data(), pixels, img.rgb.data());
  return img;
}

// ---------------------------------------------------------------------------------------------
// PNG (libspng).

struct SpngDeleter {
  void operator()(spng_ctx* ctx) const { spng_ctx_free(ctx); }
};

absl::Status PngError(int code) {
  if (code == SPNG_EMEM) return absl::ResourceExhaustedError("PNG decoder ran out of memory");
  return absl::InvalidArgumentError(absl::StrCat(
      "PNG data is truncated or corrupt (spng: ", std::string(spng_strerror(code)), ")"));
}

uint32_t ReadBigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

absl::StatusOr<Image> DecodePng(std::span<const uint8_t> bytes, const Limits& limits) {
  // Read IHDR's dimensions ourselves first, so that zero or absurd sizes are reported with
  // their numbers (spng only says "invalid width") and bombs stop before spng does any work.
  if (bytes.size() < 8 + 8 + 13 || std::memcmp(bytes.data() + 12, "IHDR", 4) != 0) {
    return absl::InvalidArgumentError(
        "PNG data is truncated or corrupt (no IHDR chunk after the signature)");
  }
  const int64_t width = ReadBigEndian32(bytes.data() + 16);
  const int64_t height = ReadBigEndian32(bytes.data() + 20);
  if (absl::Status s = CheckDimensions("PNG image", width, height, limits); !s.ok()) return s;

  std::unique_ptr<spng_ctx, SpngDeleter> ctx(spng_ctx_new(0));
  if (ctx == nullptr) return absl::ResourceExhaustedError("cannot create a PNG decoder");
  // Compressed text/ICC chunks are inflated into a cache; bound it (spng's default is SIZE_MAX).
  spng_set_chunk_limits(ctx.get(), bytes.size(), size_t{16} << 20);
  spng_set_image_limits(ctx.get(), static_cast<uint32_t>(limits.max_side),
                        static_cast<uint32_t>(limits.max_side));
  if (int rc = spng_set_png_buffer(ctx.get(), bytes.data(), bytes.size()); rc != 0) {
    return PngError(rc);
  }
  spng_ihdr ihdr{};
  if (int rc = spng_get_ihdr(ctx.get(), &ihdr); rc != 0) return PngError(rc);

  Image img;
  img.width = static_cast<int>(ihdr.width);
  img.height = static_cast<int>(ihdr.height);
  const size_t pixels = static_cast<size_t>(img.width) * img.height;
  img.rgb.resize(pixels * 3);
  if (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE && ihdr.bit_depth == 16) {
    // Pillow opens this as mode "I" and its I -> RGB conversion clips to 0..255.
    std::vector<uint16_t> grey(pixels);
    if (int rc = spng_decode_image(ctx.get(), grey.data(), pixels * 2, SPNG_FMT_PNG, 0); rc != 0) {
      return PngError(rc);
    }
    for (size_t p = 0; p < pixels; ++p) {
      const uint8_t v = static_cast<uint8_t>(std::min<uint16_t>(grey[p], 255));
      img.rgb[3 * p] = img.rgb[3 * p + 1] = img.rgb[3 * p + 2] = v;
    }
    return img;
  }
  // spng's RGB8 output matches Pillow's convert("RGB") for every other type: low bit depths
  // scaled by bit replication, 16-bit samples keep their high byte, palette looked up, alpha
  // and tRNS ignored (no SPNG_DECODE_TRNS), no gamma (no SPNG_DECODE_GAMMA).
  size_t size = 0;
  if (int rc = spng_decoded_image_size(ctx.get(), SPNG_FMT_RGB8, &size); rc != 0) {
    return PngError(rc);
  }
  if (size != img.rgb.size()) {
    return absl::InternalError(
        absl::StrCat("spng wants ", size, " bytes for a ", img.width, "x", img.height, " image"));
  }
  if (int rc = spng_decode_image(ctx.get(), img.rgb.data(), size, SPNG_FMT_RGB8, 0); rc != 0) {
    return PngError(rc);
  }
  return img;
}

}  // namespace

Format SniffFormat(std::span<const uint8_t> bytes) {
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
    return Format::kJpeg;
  }
  if (bytes.size() >= sizeof(kPngSignature) &&
      std::memcmp(bytes.data(), kPngSignature, sizeof(kPngSignature)) == 0) {
    return Format::kPng;
  }
  return Format::kUnknown;
}

absl::StatusOr<Image> Decode(std::span<const uint8_t> bytes, const Limits& limits,
                             int min_short_side) {
  if (bytes.empty()) return absl::InvalidArgumentError("image data is empty");
  if (static_cast<int64_t>(bytes.size()) > limits.max_encoded_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("encoded image is ", bytes.size(),
                                                   " bytes, over the limit of ",
                                                   limits.max_encoded_bytes, " bytes"));
  }
  switch (SniffFormat(bytes)) {
    case Format::kJpeg:
      return DecodeJpeg(bytes, limits, min_short_side);
    case Format::kPng:
      return DecodePng(bytes, limits);
    case Format::kUnknown:
      break;
  }
  const std::string other(OtherFormatName(bytes));
  return absl::InvalidArgumentError(absl::StrCat("unsupported image format",
                                                 other.empty() ? "" : " (looks like " + other + ")",
                                                 "; accepted formats: JPEG, PNG"));
}

}  // namespace visionserve::preprocess
