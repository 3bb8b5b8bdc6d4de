#pragma once

// The hot loop of YOLO decoding: per anchor, the best class over C class-score rows, and the
// anchors whose best score clears the threshold. On a [84, 8400] YOLOv8 output this reads 2.7 MB
// and decides which few anchors go on to box decoding and NMS.
//
// Semantics (all kernels, bit-identical to ClassArgmaxRef; differential tests in
// tests/server/detect/decode_kernels_test.cc):
// - best score = max over classes; best class = the FIRST class reaching it (ties -> lowest id);
// - NaN class scores are ignored: they never win and never pass (an anchor whose scores are all
//   NaN is not a candidate);
// - an anchor is a candidate iff best score > threshold (strictly, as Ultralytics' conf > thres);
// - candidates come out in ascending anchor order.

#include <cstdint>

#include "server/detect/isa.h"

namespace visionserve::detect {

// Class scores of anchor a for class c are at scores[c * class_stride + a] (class_stride >=
// num_anchors; for a [4 + C, A] output, scores = data + 4 * A and class_stride = A).
// Preconditions: num_classes >= 1, num_anchors >= 0, the three output arrays hold num_anchors
// entries. Writes the candidates' anchor index, best score and best class; returns their count.
using ClassArgmaxFn = int64_t (*)(const float* scores, int64_t num_anchors, int64_t num_classes,
                                  int64_t class_stride, float threshold, int32_t* anchor,
                                  float* score, int32_t* cls);

// The kernel for `isa` (never null). `isa` must be supported by this CPU (see ClampIsa).
ClassArgmaxFn GetClassArgmaxKernel(Isa isa);

// Plain scalar reference: one anchor at a time, classes in order.
int64_t ClassArgmaxRef(const float* scores, int64_t num_anchors, int64_t num_classes,
                       int64_t class_stride, float threshold, int32_t* anchor, float* score,
                       int32_t* cls);

namespace internal {
int64_t ClassArgmaxPortable(const float* scores, int64_t num_anchors, int64_t num_classes,
                            int64_t class_stride, float threshold, int32_t* anchor, float* score,
                            int32_t* cls);
int64_t ClassArgmaxAvx2(const float* scores, int64_t num_anchors, int64_t num_classes,
                        int64_t class_stride, float threshold, int32_t* anchor, float* score,
                        int32_t* cls);
int64_t ClassArgmaxAvx512(const float* scores, int64_t num_anchors, int64_t num_classes,
                          int64_t class_stride, float threshold, int32_t* anchor, float* score,
                          int32_t* cls);
}  // namespace internal

}  // namespace visionserve::detect
