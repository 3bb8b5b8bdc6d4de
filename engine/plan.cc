#include "engine/plan.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace visionserve::engine {

namespace {

int64_t Align64(int64_t bytes) { return (bytes + 63) / 64 * 64; }

}  // namespace

std::vector<int64_t> AssignOffsets(const std::vector<int64_t>& sizes,
                                   const std::vector<std::pair<int32_t, int32_t>>& lifetimes,
                                   int64_t* total) {
  const size_t n = sizes.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  std::vector<int64_t> offsets(n, -1);
  std::vector<size_t> placed;
  *total = 0;
  for (size_t i : order) {
    // Intervals [offset, offset+size) of already placed buffers alive at the same time.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      const bool overlap =
          lifetimes[i].first <= lifetimes[j].second && lifetimes[j].first <= lifetimes[i].second;
      if (overlap) busy.emplace_back(offsets[j], offsets[j] + Align64(sizes[j]));
    }
    std::sort(busy.begin(), busy.end());
    // Best fit: the smallest gap that holds the buffer, else after the last busy interval.
    const int64_t need = Align64(sizes[i]);
    int64_t cursor = 0, best = -1, best_gap = INT64_MAX;
    for (const auto& [lo, hi] : busy) {
      if (lo - cursor >= need && lo - cursor < best_gap) {
        best = cursor;
        best_gap = lo - cursor;
      }
      cursor = std::max(cursor, hi);
    }
    offsets[i] = best >= 0 ? best : cursor;
    *total = std::max(*total, offsets[i] + need);
    placed.push_back(i);
  }
  return offsets;
}

absl::StatusOr<std::unique_ptr<Plan>> MakePlan(const Graph& g, const PlanOptions& options,
                                               WeightCache* weights) {
  if (options.batch < 1) return absl::InvalidArgumentError("batch must be at least 1");
  auto plan = std::make_unique<Plan>();
  plan->batch_ = options.batch;
  const int32_t num_nodes = static_cast<int32_t>(g.nodes().size());

  // Where each value lives: graph inputs/outputs in the caller's buffers, the rest in the arena.
  // Intermediates get a buffer id; in-place ops reuse their input's buffer.
  const int32_t nv = g.num_values();
  std::vector<BufferRef> where(nv);
  std::vector<int32_t> buffer_of(nv, -1);
  std::vector<int64_t> buffer_size;
  std::vector<std::pair<int32_t, int32_t>> lifetime;
  std::vector<bool> external(nv, false);
  for (size_t i = 0; i < g.inputs().size(); ++i) {
    where[g.inputs()[i]] = BufferRef{BufferRef::Kind::kInput, static_cast<int32_t>(i), 0};
    external[g.inputs()[i]] = true;
  }
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    const ValueId v = g.outputs()[i];
    if (external[v]) return absl::InvalidArgumentError("a graph input cannot also be an output");
    where[v] = BufferRef{BufferRef::Kind::kOutput, static_cast<int32_t>(i), 0};
    external[v] = true;
  }
  std::vector<int32_t> last_use(nv, -1);
  for (int32_t i = 0; i < num_nodes; ++i) {
    for (ValueId v : g.node(i).inputs) last_use[v] = i;
  }
  for (int32_t i = 0; i < num_nodes; ++i) {
    const Node& n = g.node(i);
    if (n.dead) return absl::FailedPreconditionError("plan needs a compacted graph");
    const ValueId out = n.output;
    if (external[out]) continue;
    const int64_t bytes =
        options.batch * g.value(out).dims.elements() * static_cast<int64_t>(sizeof(float));
    plan->intermediate_bytes_ += static_cast<size_t>(bytes);
    const ValueId in0 = n.inputs.empty() ? kNoValue : n.inputs[0];
    const bool reuse = TraitsOf(n.type).in_place_ok && in0 != kNoValue && !external[in0] &&
                       last_use[in0] == i && g.value(in0).dims == g.value(out).dims &&
                       std::count(n.inputs.begin(), n.inputs.end(), in0) == 1;
    if (reuse) {
      buffer_of[out] = buffer_of[in0];
    } else {
      buffer_of[out] = static_cast<int32_t>(buffer_size.size());
      buffer_size.push_back(bytes);
      lifetime.emplace_back(i, i);
    }
    auto& life = lifetime[buffer_of[out]];
    life.second = std::max({life.second, i, last_use[out]});
  }
  int64_t total = 0;
  std::vector<int64_t> offsets = AssignOffsets(buffer_size, lifetime, &total);
  plan->arena_bytes_ = static_cast<size_t>(total);
  for (ValueId v = 0; v < nv; ++v) {
    if (buffer_of[v] >= 0) where[v] = BufferRef{BufferRef::Kind::kArena, 0, offsets[buffer_of[v]]};
  }

  for (int32_t i = 0; i < num_nodes; ++i) {
    const Node& n = g.node(i);
    const OpTraits& traits = TraitsOf(n.type);
    if (traits.factory == nullptr) {
      return absl::UnimplementedError(
          absl::StrFormat("node %d (%s '%s') has no kernel: run OptimizeGraph first", i,
                          OpTypeName(n.type), n.name));
    }
    OpPlanInput in;
    in.graph = &g;
    in.node_index = i;
    in.batch = options.batch;
    for (ValueId v : n.inputs) {
      in.input_dims.push_back(g.value(v).dims);
      in.inputs.push_back(where[v]);
    }
    in.output_dims = g.value(n.output).dims;
    in.output = where[n.output];
    in.isa = options.isa;
    in.num_threads = options.num_threads;
    in.weights = weights;
    auto op = traits.factory(in);
    if (!op.ok()) {
      return absl::Status(op.status().code(),
                          absl::StrCat("planning ", std::string(OpTypeName(n.type)), " '", n.name,
                                       "': ", op.status().message()));
    }
    plan->scratch_bytes_ =
        std::max(plan->scratch_bytes_, static_cast<size_t>(Align64((*op)->ScratchBytes())));
    plan->flops_ += (*op)->Flops();
    for (const BufferRef& r : in.inputs) {
      if (r.kind == BufferRef::Kind::kInput && !(*op)->ReadsInputByImage()) {
        plan->input_by_image_ = false;
      }
    }
    plan->node_outputs_.push_back(in.output);
    plan->steps_.push_back(PlannedStep{i, std::move(*op)});
  }
  return plan;
}

std::string Plan::Describe(const Graph& g) const {
  std::string out = absl::StrFormat(
      "batch %d: %d steps, arena %.2f MiB (intermediates %.2f MiB), scratch/thread %.1f KiB, "
      "%.3f GFLOP, input %s\n",
      batch_, steps_.size(), arena_bytes_ / 1048576.0, intermediate_bytes_ / 1048576.0,
      scratch_bytes_ / 1024.0, flops_ * 1e-9,
      input_by_image_ ? "read image by image" : "one buffer");
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Node& n = g.node(steps_[i].node_index);
    const BufferRef& r = node_outputs_[i];
    const char* kind = r.kind == BufferRef::Kind::kArena    ? "arena"
                       : r.kind == BufferRef::Kind::kOutput ? "output"
                                                            : "input";
    absl::StrAppendFormat(&out, "  %3d %-13s %-40s -> %s+%d  %s\n", i, OpTypeName(n.type), n.name,
                          kind, r.offset, steps_[i].op->Describe());
  }
  return out;
}

}  // namespace visionserve::engine
