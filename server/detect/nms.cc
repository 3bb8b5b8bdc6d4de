#include "server/detect/nms.h"

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

// torchvision's nms() orders boxes with scores.sort(stable=true, descending=true): ties in
// ascending index order. Sorting by (score desc, index asc) gives that order without
// std::stable_sort's temporary buffer.
template <typename It>
void SortLikeTorchvisionNms(It first, It last) {
  std::sort(first, last, [](const auto& a, const auto& b) {
    return a.score > b.score || (a.score == b.score && a.index < b.index);
  });
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

  if (n <= kCoordinateTrickMaxBoxes) {
    // _batched_nms_coordinate_trick: offsets = idxs.to(boxes) * (boxes.max() + 1), then nms().
    float max_coordinate = b[0];
    for (int64_t i = 1; i < 4 * n; ++i) max_coordinate = std::max(max_coordinate, b[i]);
    const float step = max_coordinate + 1.0f;
    for (int64_t i = 0; i < n; ++i) order[i] = {scores[i], static_cast<int32_t>(i)};
    SortLikeTorchvisionNms(order, order + n);
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

  // _batched_nms_vanilla: group indices by class, ascending within each class (counting sort
  // when the id range is small, a stable sort otherwise; either way the groups are what
  // torch.where(idxs == class_id) yields).
  GrowTo(s->grouped_, n);
  int32_t* grouped = s->grouped_.data();
  const auto [min_it, max_it] = std::minmax_element(cls, cls + n);
  const int64_t range = static_cast<int64_t>(*max_it) - *min_it + 1;
  if (range <= 4 * n + 1024) {
    s->class_start_.assign(range + 1, 0);
    int32_t* start = s->class_start_.data();
    for (int64_t i = 0; i < n; ++i) ++start[cls[i] - *min_it + 1];
    for (int64_t c = 0; c < range; ++c) start[c + 1] += start[c];
    for (int64_t i = 0; i < n; ++i) grouped[start[cls[i] - *min_it]++] = static_cast<int32_t>(i);
  } else {
    for (int64_t i = 0; i < n; ++i) grouped[i] = static_cast<int32_t>(i);
    std::stable_sort(grouped, grouped + n, [cls](int32_t a, int32_t b) { return cls[a] < cls[b]; });
  }

  s->kept_mask_.assign(n, 0);
  for (int64_t g0 = 0; g0 < n;) {
    int64_t g1 = g0 + 1;
    while (g1 < n && cls[grouped[g1]] == cls[grouped[g0]]) ++g1;
    const int64_t m = g1 - g0;
    // nms(boxes[curr_indices], scores[curr_indices]): local indices in ascending order.
    for (int64_t k = 0; k < m; ++k) order[k] = {scores[grouped[g0 + k]], static_cast<int32_t>(k)};
    SortLikeTorchvisionNms(order, order + m);
    for (int64_t k = 0; k < m; ++k) {
      const int32_t i = grouped[g0 + order[k].index];
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

  // keep_indices[scores[keep_indices].sort(descending=True)[1]]
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (s->kept_mask_[i]) order[total++] = {scores[i], static_cast<int32_t>(i)};
  }
  SortLikeTorchUnstable(order, order + total);
  const int64_t out = std::min<int64_t>(total, o.max_detections);
  keep->resize(out);
  for (int64_t k = 0; k < out; ++k) (*keep)[k] = order[k].index;
  return absl::OkStatus();
}

}  // namespace visionserve::detect
