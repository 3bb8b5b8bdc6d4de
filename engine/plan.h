#pragma once

// Planning: an optimized graph + a batch size → a Plan: one planned Op per node and one arena
// layout in which every intermediate has an offset chosen by liveness (tensors whose lifetimes
// do not overlap share memory; element-wise ops run in place when their input dies there).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cpu_features.h"
#include "engine/graph.h"
#include "engine/ops/op.h"

namespace visionserve::engine {

struct PlanOptions {
  int64_t batch = 1;
  Isa isa = Isa::kPortable;
  int num_threads = 1;  // workers that will run the plan
};

struct PlannedStep {
  int32_t node_index = 0;
  std::unique_ptr<Op> op;
};

class Plan {
 public:
  int64_t batch() const { return batch_; }
  const std::vector<PlannedStep>& steps() const { return steps_; }
  // Bytes of the activation arena (intermediates only; inputs and outputs are the caller's).
  size_t arena_bytes() const { return arena_bytes_; }
  // Sum of every intermediate's size: what the arena would need without sharing.
  size_t intermediate_bytes() const { return intermediate_bytes_; }
  // Largest per-thread scratch any op needs (64-byte multiple).
  size_t scratch_bytes_per_thread() const { return scratch_bytes_; }
  int64_t flops() const { return flops_; }
  // Every op that reads the graph input reads it image by image (Op::ReadsInputByImage), so a
  // run may take the input as one pointer per image.
  bool input_by_image() const { return input_by_image_; }
  // One line per step: node, op description, output location.
  std::string Describe(const Graph& g) const;

 private:
  friend absl::StatusOr<std::unique_ptr<Plan>> MakePlan(const Graph&, const PlanOptions&,
                                                        WeightCache*);
  int64_t batch_ = 1;
  std::vector<PlannedStep> steps_;
  std::vector<BufferRef> node_outputs_;
  size_t arena_bytes_ = 0;
  size_t intermediate_bytes_ = 0;
  size_t scratch_bytes_ = 0;
  int64_t flops_ = 0;
  bool input_by_image_ = true;
};

// `g` must be optimized (no BatchNorm left) and valid; every op type needs a factory.
absl::StatusOr<std::unique_ptr<Plan>> MakePlan(const Graph& g, const PlanOptions& options,
                                               WeightCache* weights);

// Greedy-by-size offset assignment (exposed for tests): buffers i and j may share bytes only
// if their [first, last] step ranges are disjoint. Returns offsets (64-byte aligned) and sets
// *total to the arena size.
std::vector<int64_t> AssignOffsets(const std::vector<int64_t>& sizes,
                                   const std::vector<std::pair<int32_t, int32_t>>& lifetimes,
                                   int64_t* total);

}  // namespace visionserve::engine
