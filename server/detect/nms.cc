#include "server/detect/nms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace visionserve::detect {

namespace {

template <typename T>
void GrowTo(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// torchvision's nms() orders boxes with scores.sort(stable=true, descending=true): ties in
// ascending index order. `order` arrives in ascending index order; sorting it stably by
// descending score gives exactly that. Small inputs: std::sort by (score desc, index asc).
// Larger ones: an LSD radix sort (stable by construction) on the scores' bit patterns, 11 + 11
// + 10 bits, O(n) and branch-free, which is what keeps NMS on 8400 candidates well under 1 ms.
void SortLikeTorchvisionNms(internal::ScoreIndex* order, internal::ScoreIndex* tmp, uint32_t* hist,
                            int64_t n) {
  if (n < 256) {
    std::sort(order, order + n, [](const auto& a, const auto& b) {
      return a.score > b.score || (a.score == b.score && a.index < b.index);
    });
    return;
  }
  // Key: ascending key = descending score. Finite floats only (checked); -0 counts as +0, as
  // the float comparison does.
  const auto key = [](float score) {
    uint32_t u;
    std::memcpy(&u, &score, 4);
    if (score == 0.0f) u = 0;
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // ascending in the float's order
    return ~u;
  };
  constexpr int kShift[3] = {0, 11, 22};
  constexpr uint32_t kMask[3] = {0x7FF, 0x7FF, 0x3FF};
  std::memset(hist, 0, sizeof(uint32_t) * 3 * 2048);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t k = key(order[i].score);
    for (int p = 0; p < 3; ++p) ++hist[p * 2048 + ((k >> kShift[p]) & kMask[p])];
  }
  internal::ScoreIndex* src = order;
  internal::ScoreIndex* dst = tmp;
  for (int p = 0; p < 3; ++p) {
    uint32_t* h = hist + p * 2048;
    if (h[(key(order[0].score) >> kShift[p]) & kMask[p]] == n) continue;  // one digit value
    uint32_t sum = 0;
    for (int d = 0; d < 2048; ++d) {
      const uint32_t c = h[d];
      h[d] = sum;
      sum += c;
    }
    for (int64_t i = 0; i < n; ++i) dst[h[(key(src[i].score) >> kShift[p]) & kMask[p]]++] = src[i];
    std::swap(src, dst);
  }
  if (src != order) std::memcpy(order, src, sizeof(*order) * n);
}

// Plain torch.sort(descending=True) on CPU, as _batched_nms_vanilla uses for its output order:
// std::sort of (score, index) pairs comparing scores only (NaN first, which cannot occur: inputs
// are checked finite). Not stable: equal scores end up wherever libstdc++'s introsort leaves
// them, which depends on the whole sequence. Same algorithm, same sequence, same comparisons ->
// the same order.
template <typename It>
void SortLikeTorchUnstable(It first, It last) {
  std::sort(first, last, [](const auto& a, const auto& b) { return a.score > b.score; });
}

absl::Status Validate(const NmsInput& in, const NmsOptions& o) {
  const size_t n = in.scores.size();
  if (in.boxes.size() != 4 * n) {
    return absl::InvalidArgumentError(
        absl::StrCat("NMS: boxes has ", in.boxes.size(), " floats, expected 4 x ", n, " scores"));
  }
  if (in.class_ids.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("NMS: ", in.class_ids.size(), " class ids for ", n, " scores"));
  }
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("NMS: ", n, " boxes, at most 2^31 - 1"));
  }
  if (!(o.iou_threshold >= 0.0f && o.iou_threshold <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("NMS: iou_threshold ", o.iou_threshold, " is not in [0, 1]"));
  }
  if (o.max_detections < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("NMS: max_detections ", o.max_detections, " is not positive"));
  }
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(in.scores[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("NMS: score ", i, " is not finite (", in.scores[i], ")"));
    }
  }
  for (size_t i = 0; i < 4 * n; ++i) {
    if (!std::isfinite(in.boxes[i])) {
      return absl::InvalidArgumentError(absl::StrCat("NMS: box ", i / 4, " coordinate ", i % 4,
                                                     " is not finite (", in.boxes[i], ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

NmsScratch::NmsScratch(Isa isa) : isa_(ClampIsa(isa)), filter_(GetNmsFilterKernel(isa_)) {}

// Greedy suppression over the first n SoA entries (already in sorted order), appending the ids
// of kept boxes to `out` until max_keep are kept. Each kept box compacts the rest in place.
static void Greedy(NmsFilterFn filter, const NmsCandidates& c, int64_t n, float threshold,
                   int64_t max_keep, int32_t* out, int64_t* out_count) {
  int64_t kept = 0;
  int64_t pos = 0;
  while (pos < n && kept < max_keep) {
    const NmsRefBox ref{c.x1[pos], c.y1[pos], c.x2[pos], c.y2[pos], c.area[pos]};
    out[kept++] = c.id[pos];
    ++pos;
    const NmsCandidates rest{c.x1 + pos, c.y1 + pos,   c.x2 + pos,
                             c.y2 + pos, c.area + pos, c.id + pos};
    n = pos + filter(ref, threshold, rest, n - pos);
  }
  *out_count = kept;
}

absl::Status BatchedNms(const NmsInput& in, const NmsOptions& o, NmsScratch* s,
                        std::vector<int32_t>* keep) {
  if (absl::Status st = Validate(in, o); !st.ok()) return st;
  const int64_t n = static_cast<int64_t>(in.scores.size());
  keep->clear();
  if (n == 0) return absl::OkStatus();

  GrowTo(s->order_, n);
  GrowTo(s->x1_, n);
  GrowTo(s->y1_, n);
  GrowTo(s->x2_, n);
  GrowTo(s->y2_, n);
  GrowTo(s->area_, n);
  GrowTo(s->id_, n);
  const NmsCandidates soa{s->x1_.data(), s->y1_.data(),   s->x2_.data(),
                          s->y2_.data(), s->area_.data(), s->id_.data()};
  const float* b = in.boxes.data();
  const float* scores = in.scores.data();
  const int32_t* cls = in.class_ids.data();
  auto* order = s->order_.data();
  // Every path starts from the nms() order of all boxes: score descending, ties by index.
  GrowTo(s->sort_tmp_, n);
  GrowTo(s->radix_hist_, 3 * 2048);
  for (int64_t i = 0; i < n; ++i) order[i] = {scores[i], static_cast<int32_t>(i)};
  SortLikeTorchvisionNms(order, s->sort_tmp_.data(), s->radix_hist_.data(), n);

  if (n <= kCoordinateTrickMaxBoxes) {
    // _batched_nms_coordinate_trick: offsets = idxs.to(boxes) * (boxes.max() + 1), then nms().
    float max_coordinate = b[0];
    for (int64_t i = 1; i < 4 * n; ++i) max_coordinate = std::max(max_coordinate, b[i]);
    const float step = max_coordinate + 1.0f;
    for (int64_t k = 0; k < n; ++k) {
      const int32_t i = order[k].index;
      const float offset = static_cast<float>(cls[i]) * step;
      const float x1 = b[4 * i] + offset, y1 = b[4 * i + 1] + offset;
      const float x2 = b[4 * i + 2] + offset, y2 = b[4 * i + 3] + offset;
      soa.x1[k] = x1;
      soa.y1[k] = y1;
      soa.x2[k] = x2;
      soa.y2[k] = y2;
      soa.area[k] = (x2 - x1) * (y2 - y1);
      soa.id[k] = i;
    }
    keep->resize(std::min<int64_t>(n, o.max_detections));
    int64_t kept = 0;
    Greedy(s->filter_, soa, n, o.iou_threshold, static_cast<int64_t>(keep->size()), keep->data(),
           &kept);
    keep->resize(kept);
    return absl::OkStatus();
  }

  // _batched_nms_vanilla: nms() per class on boxes[torch.where(idxs == class_id)]. A class's
  // boxes in the global order above are in the order nms() gives them (a stable sort restricted
  // to a subset is the stable sort of the subset), so a stable grouping by class of that order
  // hands each class its sorted boxes: a counting sort when the id range is small, else a sort
  // by (class, position).
  GrowTo(s->grouped_, n);
  int32_t* grouped = s->grouped_.data();
  const auto [min_it, max_it] = std::minmax_element(cls, cls + n);
  const int32_t min_class = *min_it;
  const int64_t range = static_cast<int64_t>(*max_it) - min_class + 1;
  if (range <= 4 * n + 1024) {
    s->class_start_.assign(range + 1, 0);
    int32_t* start = s->class_start_.data();
    for (int64_t i = 0; i < n; ++i) ++start[cls[i] - min_class + 1];
    for (int64_t c = 0; c < range; ++c) start[c + 1] += start[c];
    for (int64_t k = 0; k < n; ++k) {
      const int32_t i = order[k].index;
      grouped[start[cls[i] - min_class]++] = i;
    }
  } else {
    for (int64_t k = 0; k < n; ++k) grouped[k] = static_cast<int32_t>(k);
    std::sort(grouped, grouped + n, [cls, order](int32_t a, int32_t b) {
      const int32_t ca = cls[order[a].index], cb = cls[order[b].index];
      return ca < cb || (ca == cb && a < b);
    });
    for (int64_t k = 0; k < n; ++k) grouped[k] = order[grouped[k]].index;
  }

  s->kept_mask_.assign(n, 0);
  for (int64_t g0 = 0; g0 < n;) {
    int64_t g1 = g0 + 1;
    while (g1 < n && cls[grouped[g1]] == cls[grouped[g0]]) ++g1;
    const int64_t m = g1 - g0;
    for (int64_t k = 0; k < m; ++k) {
      const int32_t i = grouped[g0 + k];
      const float x1 = b[4 * i], y1 = b[4 * i + 1], x2 = b[4 * i + 2], y2 = b[4 * i + 3];
      soa.x1[k] = x1;
      soa.y1[k] = y1;
      soa.x2[k] = x2;
      soa.y2[k] = y2;
      soa.area[k] = (x2 - x1) * (y2 - y1);
      soa.id[k] = i;
    }
    // The kept ids of this class land in grouped[g0, g0 + kept): those slots are consumed.
    int64_t kept = 0;
    Greedy(s->filter_, soa, m, o.iou_threshold, m, grouped + g0, &kept);
    for (int64_t k = 0; k < kept; ++k) s->kept_mask_[grouped[g0 + k]] = 1;
    g0 = g1;
  }

  // keep_indices[scores[keep_indices].sort(descending=True)[1]], then the first max_detections.
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (s->kept_mask_[i]) order[total++] = {scores[i], static_cast<int32_t>(i)};
  }
  const int64_t out = std::min<int64_t>(total, o.max_detections);
  if (out < total) {
    // Usually only the first max_detections of that unstable sort are needed. If those scores
    // are distinct and strictly above all the others, every descending sort (std::sort's
    // included) starts with them in one and the same order: select them in O(total).
    // Otherwise which equal scores come first depends on the whole sort: run it.
    const auto by_score = [](const auto& a, const auto& b) { return a.score > b.score; };
    std::nth_element(order, order + out - 1, order + total, by_score);
    std::sort(order, order + out, by_score);
    bool distinct = true;
    for (int64_t k = 1; k < out && distinct; ++k) distinct = order[k - 1].score > order[k].score;
    for (int64_t k = out; k < total && distinct; ++k) {
      distinct = order[out - 1].score > order[k].score;
    }
    if (!distinct) {
      total = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (s->kept_mask_[i]) order[total++] = {scores[i], static_cast<int32_t>(i)};
      }
      SortLikeTorchUnstable(order, order + total);
    }
  } else {
    SortLikeTorchUnstable(order, order + total);
  }
  keep->resize(out);
  for (int64_t k = 0; k < out; ++k) (*keep)[k] = order[k].index;
  return absl::OkStatus();
}

}  // namespace visionserve::detect
