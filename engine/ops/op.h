#pragma once

// The operator level of the engine: an Op is one graph node planned for one batch size.
// Planning (the factory) decides kernels, tiles and grain sizes and fetches packed weights;
// running executes tiles. Ops never spawn threads or read thread ids: the executor runs each
// stage's tiles in parallel on its TBB arena, and hands every tile call a per-thread scratch.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <typeindex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/cpu_features.h"
#include "engine/graph.h"

namespace visionserve::engine {

// Where a tensor lives during a run.
struct BufferRef {
  enum class Kind : uint8_t { kArena, kInput, kOutput };
  Kind kind = Kind::kArena;
  int32_t index = 0;   // graph input/output index for kInput/kOutput
  int64_t offset = 0;  // bytes from the arena base for kArena (64-byte aligned)
  bool operator==(const BufferRef&) const = default;
};

// Everything a tile needs to find its tensors in one run.
struct RunContext {
  std::byte* arena = nullptr;
  const float* const* inputs = nullptr;
  float* const* outputs = nullptr;
  // Graph input 0 as one pointer per image of the run, where the caller's images are not one
  // buffer (set only for plans whose ops all read the input through ResolveImage).
  const float* const* input_images = nullptr;

  float* Resolve(const BufferRef& ref) const {
    switch (ref.kind) {
      case BufferRef::Kind::kArena:
        return reinterpret_cast<float*>(arena + ref.offset);
      case BufferRef::Kind::kInput:
        return const_cast<float*>(inputs[ref.index]);
      case BufferRef::Kind::kOutput:
        return outputs[ref.index];
    }
    return nullptr;
  }

  // Image b of `ref`, a buffer of per_image floats per image.
  const float* ResolveImage(const BufferRef& ref, int64_t b, int64_t per_image) const {
    if (ref.kind == BufferRef::Kind::kInput && input_images != nullptr) return input_images[b];
    return Resolve(ref) + b * per_image;
  }
};

class Op {
 public:
  virtual ~Op() = default;

  // Stages run one after another; the tiles of a stage run in parallel, in any order.
  virtual int NumStages() const { return 1; }
  virtual int64_t NumTiles(int stage) const = 0;
  // Tiles per parallel chunk, chosen at plan time (at least 1).
  virtual int64_t Grain(int /*stage*/) const { return 1; }
  // Runs tiles [begin, end) of `stage`. `scratch` is this thread's ScratchBytes() of
  // 64-byte aligned memory (nullptr when ScratchBytes() is 0). Must not allocate.
  virtual void RunTiles(int stage, int64_t begin, int64_t end, const RunContext& ctx,
                        std::byte* scratch) const = 0;
  virtual size_t ScratchBytes() const { return 0; }
  // Floating-point operations of one run (2 per multiply-add), for GFLOP/s reports.
  virtual int64_t Flops() const { return 0; }
  // Kernel choice and tiling, for plan reports, e.g. "gemm avx512 14x32 kc=256 tiles=112".
  virtual std::string Describe() const = 0;
  // True when the op reads graph inputs only through RunContext::ResolveImage, so that a run
  // can hand it the caller's images where they lie instead of copying them into one buffer.
  virtual bool ReadsInputByImage() const { return false; }
};

// Packed weights shared by every plan of a compiled model (packed once per node and kernel).
// Thread-safe.
class WeightCache {
 public:
  template <typename T>
  absl::StatusOr<std::shared_ptr<const T>> GetOrCreate(
      int32_t node_index, std::string_view tag,
      const std::function<absl::StatusOr<std::shared_ptr<const T>>()>& make) {
    Key key{node_index, std::string(tag), std::type_index(typeid(T))};
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      return std::static_pointer_cast<const T>(it->second);
    }
    auto made = make();
    if (!made.ok()) return made.status();
    entries_.emplace(std::move(key), *made);
    return *made;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }

 private:
  struct Key {
    int32_t node;
    std::string tag;
    std::type_index type;
    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.node, k.tag, k.type);
    }
  };
  mutable std::mutex mu_;
  absl::flat_hash_map<Key, std::shared_ptr<const void>> entries_;
};

// What a factory gets to plan one node.
struct OpPlanInput {
  const Graph* graph = nullptr;
  int32_t node_index = 0;
  int64_t batch = 1;
  std::vector<Dims> input_dims;
  Dims output_dims;
  std::vector<BufferRef> inputs;  // parallel to node.inputs
  BufferRef output;
  Isa isa = Isa::kPortable;
  int num_threads = 1;  // workers that will run the tiles (to size tiles)
  WeightCache* weights = nullptr;

  const Node& node() const { return graph->node(node_index); }
  const Param& param(int i) const { return graph->param(node().params[i]); }
};

using OpFactory = absl::StatusOr<std::unique_ptr<Op>> (*)(const OpPlanInput&);

// Static facts about an op type, used by the planner.
struct OpTraits {
  OpFactory factory = nullptr;  // nullptr: must be removed by passes before planning
  // The op reads input 0 element-for-element before writing the same element of its output, so
  // the output may share input 0's buffer when nothing else reads input 0 later.
  bool in_place_ok = false;
};

// Indexed by OpType; registration lives in engine/ops/registry.cc.
const OpTraits& TraitsOf(OpType type);

}  // namespace visionserve::engine
