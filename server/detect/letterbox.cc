#include "server/detect/letterbox.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace visionserve::detect {

namespace {

// Python's round(): nearest, ties to even.
double RoundHalfEven(double x) {
  const double f = std::floor(x);
  const double d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1;
}

bool SideOk(int v) { return v >= 1 && v <= kMaxLetterboxSide; }

// One output sample of a bilinear resize along one axis, cv2 INTER_LINEAR's half-pixel
// mapping with edge clamping. Shared by LetterboxImage and its reference so both use the very
// same weights.
struct Tap {
  int i0, i1;
  float w0, w1;
};
Tap LinearTap(int dst_index, int src_size, int dst_size) {
  const double f = (dst_index + 0.5) * (static_cast<double>(src_size) / dst_size) - 0.5;
  int i0 = static_cast<int>(std::floor(f));
  double t = f - i0;
  if (i0 < 0) {
    i0 = 0;
    t = 0;
  }
  if (i0 >= src_size - 1) {
    i0 = src_size - 1;
    t = 0;
  }
  return {i0, std::min(i0 + 1, src_size - 1), static_cast<float>(1.0 - t), static_cast<float>(t)};
}

// The nearest 8-bit level of a blended value (cv2's uint8 output; halves round up). Blends are
// convex combinations of levels, so v >= 0 and truncation is floor.
inline int Level(float v) { return std::min(255, static_cast<int>(v + 0.5f)); }
inline float Normalize(float level, float mean, float stddev) {
  return (level / 255.0f - mean) / stddev;
}

absl::Status CheckImageArgs(std::span<const uint8_t> rgb, const LetterboxGeometry& g,
                            const LetterboxNormalize& norm, std::span<float> out) {
  if (!SideOk(g.src_width) || !SideOk(g.src_height) || !SideOk(g.dst_width) ||
      !SideOk(g.dst_height) || g.resized_width < 1 || g.resized_height < 1 || g.pad_left < 0 ||
      g.pad_top < 0 || g.pad_left + g.resized_width > g.dst_width ||
      g.pad_top + g.resized_height > g.dst_height) {
    return absl::InvalidArgumentError("letterbox: geometry is not one ComputeLetterbox made");
  }
  const size_t src = static_cast<size_t>(g.src_width) * g.src_height * 3;
  if (rgb.size() != src) {
    return absl::InvalidArgumentError(absl::StrCat("letterbox: image has ", rgb.size(),
                                                   " bytes, expected ", g.src_width, " x ",
                                                   g.src_height, " x 3 = ", src));
  }
  const size_t dst = static_cast<size_t>(g.dst_width) * g.dst_height * 3;
  if (out.size() != dst) {
    return absl::InvalidArgumentError(absl::StrCat("letterbox: output holds ", out.size(),
                                                   " floats, expected ", g.dst_height, " x ",
                                                   g.dst_width, " x 3 = ", dst));
  }
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(norm.mean[c]) || !std::isfinite(norm.stddev[c]) || norm.stddev[c] == 0) {
      return absl::InvalidArgumentError(absl::StrCat("letterbox: channel ", c, " mean ",
                                                     norm.mean[c], " / stddev ", norm.stddev[c],
                                                     " (need finite values, stddev != 0)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LetterboxGeometry> ComputeLetterbox(int src_width, int src_height, int dst_width,
                                                   int dst_height, const LetterboxOptions& o) {
  if (!SideOk(src_width) || !SideOk(src_height) || !SideOk(dst_width) || !SideOk(dst_height)) {
    return absl::InvalidArgumentError(absl::StrCat("letterbox: sizes ", src_width, "x", src_height,
                                                   " -> ", dst_width, "x", dst_height,
                                                   " must all be in [1, ", kMaxLetterboxSide, "]"));
  }
  LetterboxGeometry g;
  g.src_width = src_width;
  g.src_height = src_height;
  g.dst_width = dst_width;
  g.dst_height = dst_height;
  double r = std::min(static_cast<double>(dst_height) / src_height,
                      static_cast<double>(dst_width) / src_width);
  if (!o.scale_up) r = std::min(r, 1.0);
  g.scale = r;
  g.resized_width = std::clamp(static_cast<int>(RoundHalfEven(src_width * r)), 1, dst_width);
  g.resized_height = std::clamp(static_cast<int>(RoundHalfEven(src_height * r)), 1, dst_height);
  const int pad_w = dst_width - g.resized_width;
  const int pad_h = dst_height - g.resized_height;
  g.pad_left = pad_w / 2;
  g.pad_right = pad_w - g.pad_left;
  g.pad_top = pad_h / 2;
  g.pad_bottom = pad_h - g.pad_top;
  return g;
}

Box MapToInput(const LetterboxGeometry& g, const Box& b) {
  const double sx = g.scale_x(), sy = g.scale_y();
  return {static_cast<float>(b.x1 * sx + g.pad_left), static_cast<float>(b.y1 * sy + g.pad_top),
          static_cast<float>(b.x2 * sx + g.pad_left), static_cast<float>(b.y2 * sy + g.pad_top)};
}

Box MapToOriginal(const LetterboxGeometry& g, const Box& b) {
  const double sx = g.scale_x(), sy = g.scale_y();
  return {static_cast<float>((b.x1 - static_cast<double>(g.pad_left)) / sx),
          static_cast<float>((b.y1 - static_cast<double>(g.pad_top)) / sy),
          static_cast<float>((b.x2 - static_cast<double>(g.pad_left)) / sx),
          static_cast<float>((b.y2 - static_cast<double>(g.pad_top)) / sy)};
}

Box ClipToImage(const LetterboxGeometry& g, const Box& b) {
  const float w = static_cast<float>(g.src_width), h = static_cast<float>(g.src_height);
  return {std::clamp(b.x1, 0.0f, w), std::clamp(b.y1, 0.0f, h), std::clamp(b.x2, 0.0f, w),
          std::clamp(b.y2, 0.0f, h)};
}

absl::Status MapBoxesToOriginal(const LetterboxGeometry& g, std::span<float> boxes) {
  if (boxes.size() % 4 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("letterbox: ", boxes.size(), " floats is not a whole number of boxes"));
  }
  for (size_t i = 0; i < boxes.size(); i += 4) {
    const Box b =
        ClipToImage(g, MapToOriginal(g, {boxes[i], boxes[i + 1], boxes[i + 2], boxes[i + 3]}));
    boxes[i] = b.x1;
    boxes[i + 1] = b.y1;
    boxes[i + 2] = b.x2;
    boxes[i + 3] = b.y2;
  }
  return absl::OkStatus();
}

absl::Status LetterboxImageRef(std::span<const uint8_t> rgb, const LetterboxGeometry& g,
                               const LetterboxNormalize& norm, std::span<float> out) {
  if (absl::Status st = CheckImageArgs(rgb, g, norm, out); !st.ok()) return st;
  const int sw = g.src_width;
  for (int y = 0; y < g.dst_height; ++y) {
    for (int x = 0; x < g.dst_width; ++x) {
      float* o = out.data() + (static_cast<size_t>(y) * g.dst_width + x) * 3;
      const int ry = y - g.pad_top, rx = x - g.pad_left;
      const bool inside = ry >= 0 && ry < g.resized_height && rx >= 0 && rx < g.resized_width;
      for (int c = 0; c < 3; ++c) {
        int level = kLetterboxPadLevel;
        if (inside) {
          const Tap tx = LinearTap(rx, sw, g.resized_width);
          const Tap ty = LinearTap(ry, g.src_height, g.resized_height);
          auto p = [&](int yy, int xx) -> float {
            return rgb[(static_cast<size_t>(yy) * sw + xx) * 3 + c];
          };
          const float top = p(ty.i0, tx.i0) * tx.w0 + p(ty.i0, tx.i1) * tx.w1;
          const float bottom = p(ty.i1, tx.i0) * tx.w0 + p(ty.i1, tx.i1) * tx.w1;
          level = Level(top * ty.w0 + bottom * ty.w1);
        }
        o[c] = Normalize(static_cast<float>(level), norm.mean[c], norm.stddev[c]);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status LetterboxImage(std::span<const uint8_t> rgb, const LetterboxGeometry& g,
                            const LetterboxNormalize& norm, LetterboxScratch* s,
                            std::span<float> out) {
  if (absl::Status st = CheckImageArgs(rgb, g, norm, out); !st.ok()) return st;
  const int sw = g.src_width, rw = g.resized_width, rh = g.resized_height;
  const size_t row_floats = static_cast<size_t>(rw) * 3;
  if (s->x0_.size() < static_cast<size_t>(rw)) {
    s->x0_.resize(rw);
    s->x1_.resize(rw);
    s->wx0_.resize(rw);
    s->wx1_.resize(rw);
  }
  if (s->row_a_.size() < row_floats) {
    s->row_a_.resize(row_floats);
    s->row_b_.resize(row_floats);
  }
  for (int x = 0; x < rw; ++x) {
    const Tap t = LinearTap(x, sw, rw);
    s->x0_[x] = t.i0 * 3;
    s->x1_[x] = t.i1 * 3;
    s->wx0_[x] = t.w0;
    s->wx1_[x] = t.w1;
  }
  // Every output value is one of 256 levels per channel: normalize through a table.
  float lut[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      lut[c][v] = Normalize(static_cast<float>(v), norm.mean[c], norm.stddev[c]);
    }
  }
  const float pad[3] = {lut[0][kLetterboxPadLevel], lut[1][kLetterboxPadLevel],
                        lut[2][kLetterboxPadLevel]};
  auto fill_pad = [&](float* o, int pixels) {
    for (int i = 0; i < pixels; ++i, o += 3) {
      o[0] = pad[0];
      o[1] = pad[1];
      o[2] = pad[2];
    }
  };
  // The horizontal pass of source row `row`, as the reference's `top`/`bottom` expressions.
  auto horizontal = [&](int row, float* h) {
    const uint8_t* p = rgb.data() + static_cast<size_t>(row) * sw * 3;
    for (int x = 0; x < rw; ++x) {
      const uint8_t* a = p + s->x0_[x];
      const uint8_t* b = p + s->x1_[x];
      const float w0 = s->wx0_[x], w1 = s->wx1_[x];
      h[3 * x] = static_cast<float>(a[0]) * w0 + static_cast<float>(b[0]) * w1;
      h[3 * x + 1] = static_cast<float>(a[1]) * w0 + static_cast<float>(b[1]) * w1;
      h[3 * x + 2] = static_cast<float>(a[2]) * w0 + static_cast<float>(b[2]) * w1;
    }
  };
  // Two cached horizontal rows; consecutive output rows mostly reuse them.
  float* buf[2] = {s->row_a_.data(), s->row_b_.data()};
  int buf_row[2] = {-1, -1};
  auto row_of = [&](int row, int keep_row) -> const float* {
    for (int k = 0; k < 2; ++k) {
      if (buf_row[k] == row) return buf[k];
    }
    const int k = buf_row[0] == keep_row ? 1 : 0;
    horizontal(row, buf[k]);
    buf_row[k] = row;
    return buf[k];
  };

  const int dw = g.dst_width;
  for (int y = 0; y < g.dst_height; ++y) {
    float* o = out.data() + static_cast<size_t>(y) * dw * 3;
    const int ry = y - g.pad_top;
    if (ry < 0 || ry >= rh) {
      fill_pad(o, dw);
      continue;
    }
    const Tap ty = LinearTap(ry, g.src_height, rh);
    const float* top = row_of(ty.i0, ty.i1);
    const float* bottom = row_of(ty.i1, ty.i0);
    fill_pad(o, g.pad_left);
    float* r = o + static_cast<size_t>(g.pad_left) * 3;
    for (size_t i = 0; i < row_floats; i += 3) {
      for (int c = 0; c < 3; ++c) {
        r[i + c] = lut[c][Level(top[i + c] * ty.w0 + bottom[i + c] * ty.w1)];
      }
    }
    fill_pad(r + row_floats, dw - g.pad_left - rw);
  }
  return absl::OkStatus();
}

}  // namespace visionserve::detect
