#pragma once

// Private to models/: a small interpreter of ONNX nodes on constant tensors, for the importer.
//
// Two uses: constant folding (shape arithmetic such as Shape → Gather → Add → Div → Slice that
// torch emits for chunk(), which only ever sees constants once the input's static shape is
// known), and evaluating a detector's decode tail (Reshape, Split, Transpose, Softmax, the DFL
// Conv, dist2bbox arithmetic, Sigmoid, Concat) on sample data, so the importer can check it
// against the engine's DetectDecode numerically instead of matching node shapes one by one.
//
// Floats are computed in double and stored as float32; integers as int64. Broadcasting follows
// ONNX (numpy) rules. Integer Div truncates toward zero, as ONNX Runtime does.

#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "models/onnx_util.h"

namespace onnx {
class NodeProto;
}

namespace visionserve::models::internal {

// Whether EvalNode knows `op_type` (it may still reject attribute values).
bool CanEvaluate(std::string_view op_type);

// The outputs of node `n` for `inputs` (an empty name is a null pointer). UNIMPLEMENTED for an
// op or attribute value outside the set, INVALID_ARGUMENT for inconsistent shapes, and
// RESOURCE_EXHAUSTED when an output would exceed `max_elements`.
absl::StatusOr<std::vector<ConstPtr>> EvalNode(const onnx::NodeProto& n,
                                               std::span<const ConstPtr> inputs, int64_t opset,
                                               int64_t max_elements = int64_t{1} << 26);

}  // namespace visionserve::models::internal
