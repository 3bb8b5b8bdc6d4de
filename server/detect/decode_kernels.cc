#include "server/detect/decode_kernels.h"

#include <algorithm>
#include <limits>

namespace visionserve::detect {

int64_t ClassArgmaxRef(const float* scores, int64_t num_anchors, int64_t num_classes,
                       int64_t class_stride, float threshold, int32_t* anchor, float* score,
                       int32_t* cls) {
  int64_t count = 0;
  for (int64_t a = 0; a < num_anchors; ++a) {
    float best = -std::numeric_limits<float>::infinity();
    int32_t best_class = 0;
    for (int64_t c = 0; c < num_classes; ++c) {
      const float v = scores[c * class_stride + a];
      if (v > best) {
        best = v;
        best_class = static_cast<int32_t>(c);
      }
    }
    if (best > threshold) {
      anchor[count] = static_cast<int32_t>(a);
      score[count] = best;
      cls[count] = best_class;
      ++count;
    }
  }
  return count;
}

namespace internal {

namespace {

// One class row into a block's running max / argmax, written branch-free with a compile-time
// trip count so that GCC vectorizes it with baseline SSE2: std::max(best, v) is
// best < v ? v : best, the same choice as the strict v > best update (NaN v never wins).
template <int N>
inline void UpdateBlock(const float* row, int32_t c, float* best, int32_t* best_class) {
  for (int k = 0; k < N; ++k) {
    const int32_t take = -static_cast<int32_t>(row[k] > best[k]);
    best_class[k] = (c & take) | (best_class[k] & ~take);
    best[k] = std::max(best[k], row[k]);
  }
}

}  // namespace

// Anchors in blocks of 64 with classes as the outer loop, so each class row is read
// contiguously and the per-lane max/argmax is a select the compiler can vectorize.
int64_t ClassArgmaxPortable(const float* scores, int64_t num_anchors, int64_t num_classes,
                            int64_t class_stride, float threshold, int32_t* anchor, float* score,
                            int32_t* cls) {
  constexpr int kBlock = 64;
  float best[kBlock];
  int32_t best_class[kBlock];
  int64_t count = 0;
  for (int64_t base = 0; base < num_anchors; base += kBlock) {
    const int len = static_cast<int>(std::min<int64_t>(kBlock, num_anchors - base));
    std::fill(best, best + kBlock, -std::numeric_limits<float>::infinity());
    std::fill(best_class, best_class + kBlock, 0);
    for (int64_t c = 0; c < num_classes; ++c) {
      const float* row = scores + c * class_stride + base;
      const int32_t ci = static_cast<int32_t>(c);
      if (len == kBlock) {
        UpdateBlock<kBlock>(row, ci, best, best_class);
      } else {
        for (int k = 0; k < len; ++k) {
          const bool gt = row[k] > best[k];
          best[k] = gt ? row[k] : best[k];
          best_class[k] = gt ? ci : best_class[k];
        }
      }
    }
    for (int k = 0; k < len; ++k) {
      if (best[k] > threshold) {
        anchor[count] = static_cast<int32_t>(base + k);
        score[count] = best[k];
        cls[count] = best_class[k];
        ++count;
      }
    }
  }
  return count;
}

}  // namespace internal

ClassArgmaxFn GetClassArgmaxKernel(Isa isa) {
#if defined(__x86_64__)
  switch (isa) {
    case Isa::kAvx512:
      return &internal::ClassArgmaxAvx512;
    case Isa::kAvx2:
      return &internal::ClassArgmaxAvx2;
    case Isa::kPortable:
      break;
  }
#else
  (void)isa;
#endif
  return &internal::ClassArgmaxPortable;
}

}  // namespace visionserve::detect
