#pragma once

// Runs one planned op by hand, the way the executor would but serially and in a scrambled tile
// order, for op tests: builds the OpPlanInput (inputs as graph inputs, output as a graph output or
// in place over input 0), runs every stage's tiles in shuffled uneven chunks, and returns the
// output tensor.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "engine/cpu_features.h"
#include "engine/graph.h"
#include "engine/ops/op.h"
#include "engine/ops/registry.h"
#include "engine/tensor.h"
#include "gtest/gtest.h"

namespace visionserve::engine::testing {

struct OpRunOptions {
  Isa isa = Isa::kPortable;
  int num_threads = 1;
  int64_t batch = 1;
  bool in_place = false;  // the output BufferRef is input 0's
  uint32_t seed = 1;      // tile order
};

struct OpRunResult {
  Tensor output;
  std::string describe;
  int64_t flops = 0;
  int64_t tiles = 0;
};

inline std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (isa <= DetectIsa()) isas.push_back(isa);
  }
  return isas;
}

// Plans `node_index` of `g` (whose inputs must be graph inputs, in the order of `inputs`) and
// runs it. `weights` may be shared between calls to check that plans reuse packed weights.
inline absl::StatusOr<OpRunResult> RunOp(const Graph& g, int32_t node_index,
                                         const std::vector<const Tensor*>& inputs,
                                         const OpRunOptions& options,
                                         WeightCache* weights = nullptr) {
  WeightCache local_cache;
  const Node& node = g.node(node_index);
  OpPlanInput in;
  in.graph = &g;
  in.node_index = node_index;
  in.batch = options.batch;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    in.input_dims.push_back(g.value(node.inputs[i]).dims);
    in.inputs.push_back(BufferRef{BufferRef::Kind::kInput, static_cast<int32_t>(i), 0});
  }
  in.output_dims = g.value(node.output).dims;
  in.output = options.in_place ? in.inputs[0] : BufferRef{BufferRef::Kind::kOutput, 0, 0};
  in.isa = options.isa;
  in.num_threads = options.num_threads;
  in.weights = weights != nullptr ? weights : &local_cache;
  auto op = TraitsOf(node.type).factory(in);
  if (!op.ok()) return op.status();

  // Private copies of the inputs (the op may write into input 0), plus the output.
  std::vector<Tensor> copies;
  for (const Tensor* t : inputs) {
    copies.emplace_back(t->n(), t->dims());
    std::copy(t->span().begin(), t->span().end(), copies.back().data());
  }
  std::vector<const float*> in_ptrs;
  for (Tensor& t : copies) in_ptrs.push_back(t.data());
  OpRunResult result;
  result.output = Tensor(options.batch, in.output_dims);
  std::fill(result.output.span().begin(), result.output.span().end(), -777.f);
  float* out_ptrs[1] = {result.output.data()};
  RunContext ctx{nullptr, in_ptrs.data(), out_ptrs};

  const size_t scratch_bytes = (*op)->ScratchBytes();
  AlignedPtr<std::byte> scratch =
      scratch_bytes > 0 ? MakeAligned<std::byte>(scratch_bytes) : AlignedPtr<std::byte>();
  std::mt19937 rng(options.seed);
  if ((*op)->NumStages() < 1) return absl::InternalError("an op needs at least one stage");
  for (int stage = 0; stage < (*op)->NumStages(); ++stage) {
    const int64_t tiles = (*op)->NumTiles(stage);
    if (tiles < 1 || (*op)->Grain(stage) < 1) {
      return absl::InternalError(
          absl::StrFormat("stage %d: %d tiles, grain %d", stage, tiles, (*op)->Grain(stage)));
    }
    result.tiles += tiles;
    // Uneven chunks [begin, end), run in a random order.
    std::vector<std::pair<int64_t, int64_t>> chunks;
    for (int64_t t = 0; t < tiles;) {
      const int64_t len = std::min<int64_t>(tiles - t, 1 + rng() % 3);
      chunks.emplace_back(t, t + len);
      t += len;
    }
    std::shuffle(chunks.begin(), chunks.end(), rng);
    for (auto [b, e] : chunks) (*op)->RunTiles(stage, b, e, ctx, scratch.get());
  }
  if (options.in_place) {
    std::copy(copies[0].span().begin(), copies[0].span().end(), result.output.data());
  }
  result.describe = (*op)->Describe();
  result.flops = (*op)->Flops();
  return result;
}

// max |a − b| over all elements, relative to max(|b|, floor).
inline double MaxRelDiff(const Tensor& a, const Tensor& b, double floor = 1.0) {
  double diff = 0, mag = floor;
  for (int64_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double{a.data()[i]} - double{b.data()[i]}));
    mag = std::max(mag, std::abs(double{b.data()[i]}));
  }
  return diff / mag;
}

inline bool BitwiseEqual(const Tensor& a, const Tensor& b) {
  return a.size() == b.size() &&
         std::equal(a.span().begin(), a.span().end(), b.span().begin(), [](float x, float y) {
           return std::bit_cast<uint32_t>(x) == std::bit_cast<uint32_t>(y);
         });
}

}  // namespace visionserve::engine::testing
