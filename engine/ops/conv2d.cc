#include "absl/strings/str_format.h"
#include "engine/ops/registry.h"

namespace visionserve::engine {

OpResult CreateConv2DOp(const OpPlanInput& in) {
  const auto& a = in.node().attr<Conv2DAttrs>();
  const int64_t cin = in.input_dims[0].c;
  if (a.is_depthwise(cin)) return CreateDepthwiseConvOp(in);
  if (a.fused_channel_norm) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: a fused channel norm needs a depthwise conv", in.node().name));
  }
  const bool pointwise = a.kernel_h == 1 && a.kernel_w == 1 && a.stride_h == 1 && a.stride_w == 1 &&
                         a.pad_top == 0 && a.pad_left == 0 && a.pad_bottom == 0 &&
                         a.pad_right == 0 && a.groups == 1;
  if (pointwise) return CreatePointwiseConvOp(in);
  return CreateGeneralConvOp(in);
}

}  // namespace visionserve::engine
