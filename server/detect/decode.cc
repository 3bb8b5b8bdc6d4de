#include "server/detect/decode.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace visionserve::detect {

namespace {

template <typename T>
void GrowTo(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

absl::Status Validate(const YoloOutputView& out, const DecodeOptions& o) {
  if (out.num_classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode: num_classes ", out.num_classes, " is not positive"));
  }
  if (out.num_anchors < 0 || out.num_anchors > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode: num_anchors ", out.num_anchors, " is not in [0, 2^31)"));
  }
  const int64_t rows = 4 + static_cast<int64_t>(out.num_classes);
  if (static_cast<int64_t>(out.data.size()) / rows != out.num_anchors ||
      static_cast<int64_t>(out.data.size()) % rows != 0) {
    return absl::InvalidArgumentError(absl::StrCat("decode: output has ", out.data.size(),
                                                   " floats, expected (4 + ", out.num_classes,
                                                   ") x ", out.num_anchors));
  }
  if (!(o.score_threshold >= 0.0f && o.score_threshold <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode: score_threshold ", o.score_threshold, " is not in [0, 1]"));
  }
  if (o.max_candidates < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode: max_candidates ", o.max_candidates, " is not positive"));
  }
  for (int32_t c : o.class_filter) {
    if (c < 0 || c >= out.num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("decode: class filter id ", c, " is not in [0, ", out.num_classes, ")"));
    }
  }
  return absl::OkStatus();
}

// Appends one candidate (xywh -> xyxy as Ultralytics' xywh2xyxy); rejects non-finite values.
absl::Status Append(const float* data, int64_t num_anchors, int32_t anchor, int32_t cls,
                    float score, Candidates* out) {
  const float cx = data[anchor];
  const float cy = data[num_anchors + anchor];
  const float w = data[2 * num_anchors + anchor];
  const float h = data[3 * num_anchors + anchor];
  const float box[4] = {cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2};
  if (!std::isfinite(score) || !std::isfinite(box[0]) || !std::isfinite(box[1]) ||
      !std::isfinite(box[2]) || !std::isfinite(box[3])) {
    return absl::InvalidArgumentError(absl::StrCat(
        "decode: anchor ", anchor, " class ", cls, " has a non-finite score or box (score ", score,
        ", cx ", cx, ", cy ", cy, ", w ", w, ", h ", h, ")"));
  }
  out->boxes.insert(out->boxes.end(), box, box + 4);
  out->scores.push_back(score);
  out->class_ids.push_back(cls);
  out->anchors.push_back(anchor);
  return absl::OkStatus();
}

}  // namespace

void Candidates::clear() {
  boxes.clear();
  scores.clear();
  class_ids.clear();
  anchors.clear();
}

DecodeScratch::DecodeScratch(Isa isa) : isa_(ClampIsa(isa)), argmax_(GetClassArgmaxKernel(isa_)) {}

absl::Status DecodeYoloOutput(const YoloOutputView& output, const DecodeOptions& o,
                              DecodeScratch* s, Candidates* out) {
  if (absl::Status st = Validate(output, o); !st.ok()) return st;
  out->clear();
  const int64_t a_count = output.num_anchors;
  const int64_t c_count = output.num_classes;
  if (a_count == 0) return absl::OkStatus();
  const float* data = output.data.data();
  const float* class_scores = data + 4 * a_count;

  const bool filtered = !o.class_filter.empty();
  if (filtered) {
    s->allowed_.assign(c_count, 0);
    for (int32_t c : o.class_filter) s->allowed_[c] = 1;
  }

  // Anchors whose best class clears the threshold (Ultralytics' xc = amax(1) > conf_thres).
  GrowTo(s->anchor_, a_count);
  GrowTo(s->score_, a_count);
  GrowTo(s->class_, a_count);
  const int64_t n = s->argmax_(class_scores, a_count, c_count, a_count, o.score_threshold,
                               s->anchor_.data(), s->score_.data(), s->class_.data());

  for (int64_t k = 0; k < n; ++k) {
    const int32_t a = s->anchor_[k];
    if (!o.multi_label) {
      if (filtered && !s->allowed_[s->class_[k]]) continue;
      if (absl::Status st = Append(data, a_count, a, s->class_[k], s->score_[k], out); !st.ok()) {
        return st;
      }
      continue;
    }
    for (int64_t c = 0; c < c_count; ++c) {
      const float v = class_scores[c * a_count + a];
      if (!(v > o.score_threshold) || (filtered && !s->allowed_[c])) continue;
      if (absl::Status st = Append(data, a_count, a, static_cast<int32_t>(c), v, out); !st.ok()) {
        return st;
      }
    }
  }

  // x[x[:, 4].argsort(descending=True)[:max_nms]]: torch's sort is std::sort on (score, index).
  const int64_t total = static_cast<int64_t>(out->size());
  if (total > o.max_candidates) {
    GrowTo(s->order_, total);
    auto* order = s->order_.data();
    for (int64_t k = 0; k < total; ++k) order[k] = {out->scores[k], static_cast<int32_t>(k)};
    std::sort(order, order + total, [](const auto& x, const auto& y) { return x.score > y.score; });
    Candidates& all = s->unsorted_;
    all.boxes.assign(out->boxes.begin(), out->boxes.end());
    all.scores.assign(out->scores.begin(), out->scores.end());
    all.class_ids.assign(out->class_ids.begin(), out->class_ids.end());
    all.anchors.assign(out->anchors.begin(), out->anchors.end());
    const int64_t m = o.max_candidates;
    out->boxes.resize(4 * m);
    out->scores.resize(m);
    out->class_ids.resize(m);
    out->anchors.resize(m);
    for (int64_t k = 0; k < m; ++k) {
      const int32_t i = order[k].index;
      std::copy_n(all.boxes.begin() + 4 * i, 4, out->boxes.begin() + 4 * k);
      out->scores[k] = all.scores[i];
      out->class_ids[k] = all.class_ids[i];
      out->anchors[k] = all.anchors[i];
    }
  }
  return absl::OkStatus();
}

}  // namespace visionserve::detect
