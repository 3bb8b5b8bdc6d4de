#include "engine/ops/registry.h"

#include <array>

namespace visionserve::engine {

namespace {

constexpr std::array<OpTraits, static_cast<size_t>(OpType::kCount)> kTraits = {{
    /* kInput         */ {nullptr, false},
    /* kConv2D        */ {&CreateConv2DOp, false},
    /* kBatchNorm     */ {nullptr, false},  // folded into the producing conv by passes
    /* kActivation    */ {&CreateActivationOp, true},
    /* kAdd           */ {&CreateAddOp, true},
    /* kMul           */ {&CreateMulOp, true},
    /* kChannelScale  */ {&CreateChannelScaleOp, true},
    /* kLayerNorm     */ {&CreateLayerNormOp, true},
    /* kGlobalAvgPool */ {&CreateGlobalAvgPoolOp, false},
    /* kMaxPool       */ {&CreateMaxPoolOp, false},
    /* kLinear        */ {&CreateLinearOp, false},
    /* kSoftmax       */ {&CreateSoftmaxOp, true},
    /* kSqueezeExcite */ {&CreateSqueezeExciteOp, true},
    /* kUpsample      */ {&CreateUpsampleOp, false},
    /* kConcat        */ {&CreateConcatOp, false},
    /* kDetectDecode  */ {&CreateDetectDecodeOp, false},
    /* kSlice         */ {&CreateSliceOp, false},
}};
static_assert(kTraits.size() == static_cast<size_t>(OpType::kCount),
              "register every OpType in kTraits");

}  // namespace

const OpTraits& TraitsOf(OpType type) { return kTraits[static_cast<size_t>(type)]; }

}  // namespace visionserve::engine
