#pragma once

// The inner step of greedy NMS: one kept box against the surviving candidates, in SoA layout.
//
// IoU is torchvision 0.14's CPU nms_kernel.cpp, operation for operation, in float32 with no
// "+1" on widths:
//   w = max(0, min(ref.x2, x2) - max(ref.x1, x1)), h likewise, inter = w * h,
//   iou = inter / ((ref.area + area) - inter),   area = (x2 - x1) * (y2 - y1)
// and a candidate is suppressed iff iou > threshold. So IoU == threshold keeps the candidate, and
// a NaN IoU (0 / 0: two zero-area boxes, or inf - inf after overflow) never suppresses. The
// vector kernels order min/max operands so that they return what std::min/std::max return for
// every input (including signed zeros), and the library is built with -ffp-contract=off, so
// every kernel is bit-identical to NmsFilterRef (tests/server/detect/nms_kernels_test.cc).

#include <cstdint>

#include "server/detect/isa.h"

namespace visionserve::detect {

// The box every candidate is compared with; area as defined above.
struct NmsRefBox {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0, area = 0;
};

// Borrowed SoA arrays of the candidates (at least n valid entries each). No padding or
// alignment is required: tails use masked loads/stores.
struct NmsCandidates {
  float* x1 = nullptr;
  float* y1 = nullptr;
  float* x2 = nullptr;
  float* y2 = nullptr;
  float* area = nullptr;
  int32_t* id = nullptr;
};

// Removes from candidates [0, n) every entry whose IoU with `ref` is > threshold, moving the
// survivors to the front in their original order (all six arrays alike); returns how many
// survive. Entries at [survivors, n) are unspecified afterwards.
using NmsFilterFn = int64_t (*)(const NmsRefBox& ref, float threshold, const NmsCandidates& c,
                                int64_t n);

// The kernel for `isa` (never null). `isa` must be supported by this CPU (see ClampIsa).
NmsFilterFn GetNmsFilterKernel(Isa isa);

// Plain scalar reference: torchvision's loop body verbatim.
int64_t NmsFilterRef(const NmsRefBox& ref, float threshold, const NmsCandidates& c, int64_t n);

namespace internal {
int64_t NmsFilterPortable(const NmsRefBox& ref, float threshold, const NmsCandidates& c, int64_t n);
int64_t NmsFilterAvx2(const NmsRefBox& ref, float threshold, const NmsCandidates& c, int64_t n);
int64_t NmsFilterAvx512(const NmsRefBox& ref, float threshold, const NmsCandidates& c, int64_t n);
}  // namespace internal

}  // namespace visionserve::detect
