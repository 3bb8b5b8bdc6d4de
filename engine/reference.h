#pragma once

// A plain, single-threaded interpreter of the graph IR: every op (unfused and fused forms) in
// the most obvious loops, in double-precision accumulation. It is the ground truth the planned
// engine is tested against; never used for serving.

#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/graph.h"
#include "engine/tensor.h"

namespace visionserve::engine {

// Runs `graph` on `inputs` (one Tensor per graph input, all with the same batch) and returns
// one Tensor per graph output.
absl::StatusOr<std::vector<Tensor>> RunReference(const Graph& graph,
                                                 std::span<const Tensor> inputs);

// Scalar activation, as torch defines it (double precision).
double ReferenceActivation(Activation act, double x);

}  // namespace visionserve::engine
