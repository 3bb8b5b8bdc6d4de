#pragma once

// A compiled model: an optimized graph, weights packed once, a Plan per batch size (made at
// load for the listed sizes, or on first use of another size) and a pool of pre-touched
// activation arenas per plan. Run() is const and thread-safe: concurrent batches each take
// their own arena from the pool; in steady state a run allocates nothing.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/cpu_features.h"
#include "engine/graph.h"
#include "engine/ops/op.h"
#include "engine/passes.h"
#include "engine/plan.h"
#include "tbb/task_arena.h"

namespace visionserve::engine {

class ThreadPool;

struct CompileOptions {
  Isa isa = DefaultIsa();
  // Worker threads; 0 = the process's CPU allowance (affinity mask and cgroup quota).
  int num_threads = 0;
  // Batch sizes planned (and their arenas touched) at load; others are planned on first use.
  std::vector<int64_t> batch_sizes = {1};
  // Largest batch Run() accepts.
  int64_t max_batch_size = 256;
  // Run() executes larger batches as consecutive chunks of at most this many images (0: no
  // chunking). Images are independent, and beyond ~8 images per op the working set of the
  // early, activation-heavy layers leaves the caches: measured on the zoo, 8 keeps batch-32
  // throughput at or above batch-8 throughput, where unchunked runs lose 10-45 %.
  int64_t max_chunk = 8;
  // Run the fusion passes (off only to test the unfused ops).
  bool optimize = true;
  // The worker pool to run on, shared by every model of a server (one arena for the process).
  // Null: the model gets a pool of its own with `num_threads` threads.
  std::shared_ptr<ThreadPool> pool;
};

// A process-wide pool of worker threads (one oneTBB arena) that flush denormals.
class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  int num_threads() const { return num_threads_; }
  tbb::task_arena& arena() { return *arena_; }

 private:
  int num_threads_;
  std::unique_ptr<tbb::task_arena> arena_;
};

class CompiledModel {
 public:
  static absl::StatusOr<std::unique_ptr<CompiledModel>> Create(Graph graph,
                                                               const CompileOptions& options);
  ~CompiledModel();

  // Runs `batch` images (in chunks of at most CompileOptions::max_chunk). `input` holds batch ×
  // input_dims() floats (NHWC), `output` receives batch × output_dims() floats. Thread-safe.
  absl::Status Run(int64_t batch, std::span<const float> input, std::span<float> output) const;
  // Runs like Run() on images that are not one buffer: `images[i]` points to image i's
  // input_dims() floats. When the plan's first layers read the input image by image
  // (Plan::input_by_image(), true for the zoo's stems), they read the images where they lie;
  // otherwise the run gathers them into a buffer of its arena first. Allocates nothing either way.
  absl::Status Run(std::span<const float* const> images, std::span<float> output) const;

  // Runs like Run() and returns the wall time of each plan step in seconds (for profiling;
  // it allocates).
  absl::StatusOr<std::vector<double>> ProfileSteps(int64_t batch, std::span<const float> input,
                                                   std::span<float> output) const;

  // The plan for a batch size (made now if needed). Thread-safe.
  absl::StatusOr<const Plan*> GetPlan(int64_t batch) const;

  const Graph& graph() const { return graph_; }
  const Dims& input_dims() const { return input_dims_; }
  const Dims& output_dims() const { return output_dims_; }
  Isa isa() const { return isa_; }
  int num_threads() const;
  const PassStats& pass_stats() const { return pass_stats_; }
  int64_t max_batch_size() const { return max_batch_size_; }

 private:
  struct Arena;
  struct PlanEntry;
  CompiledModel() = default;
  absl::Status CheckBatch(int64_t batch) const;  // 1 ≤ batch ≤ max_batch_size()
  absl::StatusOr<PlanEntry*> GetEntry(int64_t batch) const;
  // Runs the plan's steps [first, last).
  void Execute(const Plan& plan, size_t first, size_t last, const RunContext& ctx,
               std::byte* scratch) const;
  // Runs a checked batch in chunks of at most max_chunk_ images; the input is `input` (one
  // buffer) or, when null, `images`.
  absl::Status RunChunks(int64_t batch, const float* input, const float* const* images,
                         float* output) const;
  // Runs one chunk whose input is `input` (one buffer) or, when null, `images`.
  absl::Status RunChunk(int64_t batch, const float* input, const float* const* images,
                        float* output) const;
  absl::Status CheckSizes(int64_t batch, std::span<const float> input,
                          std::span<float> output) const;

  Graph graph_;
  Dims input_dims_, output_dims_;
  Isa isa_ = Isa::kPortable;
  int64_t max_batch_size_ = 256;
  int64_t max_chunk_ = 8;
  PassStats pass_stats_;
  std::shared_ptr<ThreadPool> pool_;
  mutable WeightCache weights_;
  mutable absl::Mutex mu_;
  mutable std::map<int64_t, std::unique_ptr<PlanEntry>> plans_ ABSL_GUARDED_BY(mu_);
};

}  // namespace visionserve::engine
