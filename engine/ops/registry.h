#pragma once

// Op factories, one per file in engine/ops/. Adding an op: a file with its factory, one line
// in registry.cc's table (a static_assert catches a forgotten OpType).

#include <memory>

#include "absl/status/statusor.h"
#include "engine/ops/op.h"

namespace visionserve::engine {

using OpResult = absl::StatusOr<std::unique_ptr<Op>>;

// conv2d.cc: routes to one of the three below by shape.
OpResult CreateConv2DOp(const OpPlanInput& in);
// gemm_conv.cc: 1×1 stride-1 unpadded ungrouped conv as one GEMM over N·H·W rows.
OpResult CreatePointwiseConvOp(const OpPlanInput& in);
// gemm_conv.cc: any other non-depthwise conv (dense k×k stem, grouped), im2col tiles + GEMM.
OpResult CreateGeneralConvOp(const OpPlanInput& in);
// dwconv.cc: depthwise k×k, optionally with a fused channel norm.
OpResult CreateDepthwiseConvOp(const OpPlanInput& in);
// gemm_conv.cc: linear over N rows of K features.
OpResult CreateLinearOp(const OpPlanInput& in);

// elementwise.cc
OpResult CreateActivationOp(const OpPlanInput& in);
OpResult CreateAddOp(const OpPlanInput& in);
OpResult CreateMulOp(const OpPlanInput& in);
OpResult CreateChannelScaleOp(const OpPlanInput& in);
// normalization.cc
OpResult CreateLayerNormOp(const OpPlanInput& in);
// pooling.cc
OpResult CreateGlobalAvgPoolOp(const OpPlanInput& in);
OpResult CreateMaxPoolOp(const OpPlanInput& in);
// softmax.cc
OpResult CreateSoftmaxOp(const OpPlanInput& in);
// layout.cc: data movement
OpResult CreateUpsampleOp(const OpPlanInput& in);
OpResult CreateConcatOp(const OpPlanInput& in);
OpResult CreateSliceOp(const OpPlanInput& in);
// detect_decode.cc
OpResult CreateDetectDecodeOp(const OpPlanInput& in);
// squeeze_excite.cc
OpResult CreateSqueezeExciteOp(const OpPlanInput& in);

}  // namespace visionserve::engine
