#include "server/detect/nms_kernels.h"

#include <algorithm>

namespace visionserve::detect {

namespace {

// The suppression test of torchvision's nms_kernel_impl, same operations in the same order.
inline bool Suppressed(const NmsRefBox& r, float threshold, float x1, float y1, float x2, float y2,
                       float area) {
  const float xx1 = std::max(r.x1, x1);
  const float yy1 = std::max(r.y1, y1);
  const float xx2 = std::min(r.x2, x2);
  const float yy2 = std::min(r.y2, y2);
  const float w = std::max(0.0f, xx2 - xx1);
  const float h = std::max(0.0f, yy2 - yy1);
  const float inter = w * h;
  const float ovr = inter / (r.area + area - inter);
  return ovr > threshold;
}

inline void Move(const NmsCandidates& c, int64_t from, int64_t to) {
  c.x1[to] = c.x1[from];
  c.y1[to] = c.y1[from];
  c.x2[to] = c.x2[from];
  c.y2[to] = c.y2[from];
  c.area[to] = c.area[from];
  c.id[to] = c.id[from];
}

}  // namespace

int64_t NmsFilterRef(const NmsRefBox& ref, float threshold, const NmsCandidates& c, int64_t n) {
  int64_t kept = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (Suppressed(ref, threshold, c.x1[j], c.y1[j], c.x2[j], c.y2[j], c.area[j])) continue;
    if (kept != j) Move(c, j, kept);
    ++kept;
  }
  return kept;
}

namespace internal {

// Blocks of 32: a branch-free flag pass the compiler can vectorize with baseline SSE2, then a
// scalar compaction that skips the moves while nothing has been removed yet.
int64_t NmsFilterPortable(const NmsRefBox& ref, float threshold, const NmsCandidates& c,
                          int64_t n) {
  constexpr int kBlock = 32;
  bool suppressed[kBlock];
  int64_t kept = 0;
  for (int64_t base = 0; base < n; base += kBlock) {
    const int len = static_cast<int>(std::min<int64_t>(kBlock, n - base));
    int any = 0;
    for (int k = 0; k < len; ++k) {
      const int64_t j = base + k;
      suppressed[k] = Suppressed(ref, threshold, c.x1[j], c.y1[j], c.x2[j], c.y2[j], c.area[j]);
      any |= suppressed[k];
    }
    if (!any && kept == base) {
      kept += len;
      continue;
    }
    for (int k = 0; k < len; ++k) {
      if (suppressed[k]) continue;
      if (kept != base + k) Move(c, base + k, kept);
      ++kept;
    }
  }
  return kept;
}

}  // namespace internal

NmsFilterFn GetNmsFilterKernel(Isa isa) {
#if defined(__x86_64__)
  switch (isa) {
    case Isa::kAvx512:
      return &internal::NmsFilterAvx512;
    case Isa::kAvx2:
      return &internal::NmsFilterAvx2;
    case Isa::kPortable:
      break;
  }
#else
  (void)isa;
#endif
  return &internal::NmsFilterPortable;
}

}  // namespace visionserve::detect
