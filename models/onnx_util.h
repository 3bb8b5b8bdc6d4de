#pragma once

// Private to models/: ONNX protobuf helpers shared by import and export.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace onnx {
class AttributeProto;
class NodeProto;
class TensorProto;
}  // namespace onnx

namespace visionserve::models::internal {

// A constant tensor (initializer or Constant node), float or integer.
struct Const {
  std::string name;
  int32_t data_type = 0;  // onnx::TensorProto::DataType
  std::vector<int64_t> shape;
  bool is_int = false;
  std::vector<float> f;    // when !is_int
  std::vector<int64_t> i;  // when is_int
  int64_t numel() const;
  double At(int64_t k) const { return is_int ? static_cast<double>(i[k]) : f[k]; }
  // Exact for every int64 (At() is not above 2^53: torch writes INT64_MAX as "to the end").
  int64_t IntAt(int64_t k) const { return is_int ? i[k] : static_cast<int64_t>(f[k]); }
};
using ConstPtr = std::shared_ptr<const Const>;

std::string DataTypeName(int32_t data_type);

// Decodes a TensorProto (float, double, float16 → float; int64, int32, int8, uint8, bool → int).
// INVALID_ARGUMENT for bad dims or a data size that does not match them, RESOURCE_EXHAUSTED past
// `max_bytes`, UNIMPLEMENTED for external data and other types.
absl::StatusOr<ConstPtr> ReadTensor(const onnx::TensorProto& t, int64_t max_bytes);
// The value of a Constant node (value, value_float(s), value_int(s)).
absl::StatusOr<ConstPtr> ReadConstantNode(const onnx::NodeProto& n, int64_t max_bytes);

const onnx::AttributeProto* FindAttr(const onnx::NodeProto& n, absl::string_view name);
// Typed attribute readers; INVALID_ARGUMENT when present with another type.
absl::StatusOr<int64_t> IntAttr(const onnx::NodeProto& n, absl::string_view name, int64_t dflt);
absl::StatusOr<float> FloatAttr(const onnx::NodeProto& n, absl::string_view name, float dflt);

// Conv/pool geometry from kernel_shape, strides, dilations, pads and auto_pad, checked against
// the kernel (kh × kw) and input (in_h × in_w): pads are [top, left, bottom, right].
absl::Status SpatialAttrs(const onnx::NodeProto& n, int kh, int kw, int64_t in_h, int64_t in_w,
                          bool allow_dilation, int* stride_h, int* stride_w, int* dil_h, int* dil_w,
                          int* pad_top, int* pad_left, int* pad_bottom, int* pad_right);

}  // namespace visionserve::models::internal
