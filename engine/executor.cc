#include "engine/executor.h"

#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"
#include "tbb/partitioner.h"
#include "tbb/task_arena.h"

namespace visionserve::engine {

// Worker threads get FTZ/DAZ from the tile loop itself (FlushDenormalsOnThisThread is a
// read and compare once set). A task_scheduler_observer would do it on arena entry, but
// oneTBB 2021.8 leaks the observer's proxy when a worker is still leaving the arena as the
// observer is removed (LeakSanitizer finds it).
ThreadPool::ThreadPool(int num_threads)
    : num_threads_(num_threads > 0 ? num_threads : CpuAllowance()),
      arena_(std::make_unique<tbb::task_arena>(num_threads_)) {
  arena_->initialize();
}

ThreadPool::~ThreadPool() = default;

// Activation memory for one in-flight run: mapped once, huge pages requested, touched up front.
// Layout: intermediates, per-thread scratch, then (for plans that cannot read the input image
// by image) room to gather a batch of input images.
struct CompiledModel::Arena {
  std::byte* base = nullptr;
  size_t bytes = 0;
  size_t scratch_offset = 0;
  size_t scratch_per_thread = 0;
  float* gather = nullptr;

  Arena(size_t arena_bytes, size_t scratch_bytes, int threads, size_t gather_bytes) {
    scratch_offset = (arena_bytes + 4095) / 4096 * 4096;
    scratch_per_thread = scratch_bytes;
    const size_t gather_offset = (scratch_offset + scratch_bytes * threads + 63) / 64 * 64;
    bytes = std::max<size_t>(gather_offset + gather_bytes, 4096);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    if (bytes >= kHugePageBytes) madvise(p, bytes, MADV_HUGEPAGE);
    base = static_cast<std::byte*>(p);
    std::memset(base, 0, bytes);  // first touch now, not on the hot path
    if (gather_bytes > 0) gather = reinterpret_cast<float*>(base + gather_offset);
  }
  ~Arena() { munmap(base, bytes); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
};

struct CompiledModel::PlanEntry {
  std::unique_ptr<Plan> plan;
  size_t gather_bytes = 0;  // batch × input floats when the plan cannot read images in place
  absl::Mutex mu;
  std::vector<std::unique_ptr<Arena>> free ABSL_GUARDED_BY(mu);

  std::unique_ptr<Arena> Acquire(int threads) {
    {
      absl::MutexLock lock(&mu);
      if (!free.empty()) {
        auto a = std::move(free.back());
        free.pop_back();
        return a;
      }
    }
    return std::make_unique<Arena>(plan->arena_bytes(), plan->scratch_bytes_per_thread(), threads,
                                   gather_bytes);
  }
  void Release(std::unique_ptr<Arena> a) {
    absl::MutexLock lock(&mu);
    free.push_back(std::move(a));
  }
};

CompiledModel::~CompiledModel() = default;

absl::StatusOr<std::unique_ptr<CompiledModel>> CompiledModel::Create(Graph graph,
                                                                     const CompileOptions& opts) {
  if (graph.inputs().size() != 1 || graph.outputs().size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a compiled model needs one input and one output, graph has %d and %d",
                        graph.inputs().size(), graph.outputs().size()));
  }
  if (opts.max_batch_size < 1) return absl::InvalidArgumentError("max_batch_size must be >= 1");
  std::unique_ptr<CompiledModel> m(new CompiledModel());
  m->isa_ = std::min(opts.isa, DetectIsa());
  m->max_batch_size_ = opts.max_batch_size;
  m->max_chunk_ = opts.max_chunk;
  if (opts.optimize) {
    if (absl::Status s = OptimizeGraph(graph, &m->pass_stats_); !s.ok()) return s;
  } else if (absl::Status s = graph.Validate(); !s.ok()) {
    return s;
  }
  m->graph_ = std::move(graph);
  m->input_dims_ = m->graph_.value(m->graph_.inputs()[0]).dims;
  m->output_dims_ = m->graph_.value(m->graph_.outputs()[0]).dims;
  m->pool_ = opts.pool ? opts.pool : std::make_shared<ThreadPool>(opts.num_threads);
  for (int64_t b : opts.batch_sizes) {
    if (opts.max_chunk > 0) b = std::min(b, opts.max_chunk);
    auto entry = m->GetEntry(b);
    if (!entry.ok()) return entry.status();
    // One arena per plan up front, so the first request does not pay for page faults.
    (*entry)->Release((*entry)->Acquire(m->pool_->num_threads()));
  }
  return m;
}

int CompiledModel::num_threads() const { return pool_->num_threads(); }

absl::Status CompiledModel::CheckBatch(int64_t batch) const {
  if (batch < 1 || batch > max_batch_size_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("batch size %d outside [1, %d]", batch, max_batch_size_));
  }
  return absl::OkStatus();
}

absl::StatusOr<CompiledModel::PlanEntry*> CompiledModel::GetEntry(int64_t batch) const {
  if (absl::Status s = CheckBatch(batch); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto it = plans_.find(batch);
  if (it != plans_.end()) return it->second.get();
  PlanOptions po;
  po.batch = batch;
  po.isa = isa_;
  po.num_threads = pool_->num_threads();
  auto plan = MakePlan(graph_, po, &weights_);
  if (!plan.ok()) return plan.status();
  auto entry = std::make_unique<PlanEntry>();
  entry->plan = std::move(*plan);
  if (!entry->plan->input_by_image()) {
    entry->gather_bytes = static_cast<size_t>(batch * input_dims_.elements()) * sizeof(float);
  }
  PlanEntry* raw = entry.get();
  plans_.emplace(batch, std::move(entry));
  return raw;
}

absl::StatusOr<const Plan*> CompiledModel::GetPlan(int64_t batch) const {
  auto entry = GetEntry(batch);
  if (!entry.ok()) return entry.status();
  return (*entry)->plan.get();
}

void CompiledModel::Execute(const Plan& plan, size_t first, size_t last, const RunContext& ctx,
                            std::byte* scratch) const {
  const size_t per_thread = plan.scratch_bytes_per_thread();
  // The calling thread (often not ours) gets FTZ/DAZ for the run and its own mode back.
  const DenormalModeGuard denormals;
  for (size_t s = first; s < last; ++s) {
    const Op& op = *plan.steps()[s].op;
    for (int stage = 0; stage < op.NumStages(); ++stage) {
      const int64_t tiles = op.NumTiles(stage);
      const int64_t grain = std::max<int64_t>(1, op.Grain(stage));
      if (tiles <= grain) {
        const int t = std::max(0, tbb::this_task_arena::current_thread_index());
        op.RunTiles(stage, 0, tiles, ctx, per_thread ? scratch + t * per_thread : nullptr);
        continue;
      }
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, tiles, grain),
          [&](const tbb::blocked_range<int64_t>& r) {
            FlushDenormalsOnThisThread();
            const int t = std::max(0, tbb::this_task_arena::current_thread_index());
            op.RunTiles(stage, r.begin(), r.end(), ctx,
                        per_thread ? scratch + t * per_thread : nullptr);
          },
          tbb::simple_partitioner());
    }
  }
}

absl::Status CompiledModel::CheckSizes(int64_t batch, std::span<const float> input,
                                       std::span<float> output) const {
  const size_t in_need = static_cast<size_t>(batch * input_dims_.elements());
  const size_t out_need = static_cast<size_t>(batch * output_dims_.elements());
  if (input.size() != in_need || output.size() < out_need) {
    return absl::InvalidArgumentError(
        absl::StrFormat("batch %d needs %d input and %d output floats, got %d and %d", batch,
                        in_need, out_need, input.size(), output.size()));
  }
  return absl::OkStatus();
}

absl::Status CompiledModel::Run(int64_t batch, std::span<const float> input,
                                std::span<float> output) const {
  if (absl::Status s = CheckBatch(batch); !s.ok()) return s;
  if (absl::Status s = CheckSizes(batch, input, output); !s.ok()) return s;
  return RunChunks(batch, input.data(), nullptr, output.data());
}

absl::Status CompiledModel::Run(std::span<const float* const> images,
                                std::span<float> output) const {
  const int64_t batch = static_cast<int64_t>(images.size());
  if (absl::Status s = CheckBatch(batch); !s.ok()) return s;
  const int64_t out_per = output_dims_.elements();
  if (output.size() < static_cast<size_t>(batch * out_per)) {
    return absl::InvalidArgumentError(absl::StrFormat("batch %d needs %d output floats, got %d",
                                                      batch, batch * out_per, output.size()));
  }
  for (int64_t i = 0; i < batch; ++i) {
    if (images[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat("image %d of %d is null", i, batch));
    }
  }
  return RunChunks(batch, nullptr, images.data(), output.data());
}

absl::Status CompiledModel::RunChunks(int64_t batch, const float* input, const float* const* images,
                                      float* output) const {
  const int64_t chunk = max_chunk_ > 0 ? std::min(batch, max_chunk_) : batch;
  const int64_t in_per = input_dims_.elements(), out_per = output_dims_.elements();
  for (int64_t first = 0; first < batch; first += chunk) {
    const int64_t n = std::min(chunk, batch - first);
    absl::Status s =
        RunChunk(n, input != nullptr ? input + first * in_per : nullptr,
                 images != nullptr ? images + first : nullptr, output + first * out_per);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CompiledModel::RunChunk(int64_t batch, const float* input, const float* const* images,
                                     float* output) const {
  auto entry_or = GetEntry(batch);
  if (!entry_or.ok()) return entry_or.status();
  PlanEntry* entry = *entry_or;
  std::unique_ptr<Arena> arena = entry->Acquire(pool_->num_threads());
  if (input == nullptr && arena->gather != nullptr) {
    const int64_t in_per = input_dims_.elements();
    for (int64_t i = 0; i < batch; ++i) {
      std::memcpy(arena->gather + i * in_per, images[i], in_per * sizeof(float));
    }
    input = arena->gather;
  }
  const float* inputs[1] = {input != nullptr ? input : images[0]};
  float* outputs[1] = {output};
  RunContext ctx{arena->base, inputs, outputs};
  if (input == nullptr) ctx.input_images = images;
  std::byte* scratch = arena->base + arena->scratch_offset;
  const Plan& plan = *entry->plan;
  pool_->arena().execute([&] { Execute(plan, 0, plan.steps().size(), ctx, scratch); });
  entry->Release(std::move(arena));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<double>> CompiledModel::ProfileSteps(int64_t batch,
                                                                std::span<const float> input,
                                                                std::span<float> output) const {
  auto entry_or = GetEntry(batch);
  if (!entry_or.ok()) return entry_or.status();
  if (absl::Status s = CheckSizes(batch, input, output); !s.ok()) return s;
  PlanEntry* entry = *entry_or;
  std::unique_ptr<Arena> arena = entry->Acquire(pool_->num_threads());
  const float* inputs[1] = {input.data()};
  float* outputs[1] = {output.data()};
  RunContext ctx{arena->base, inputs, outputs};
  std::byte* scratch = arena->base + arena->scratch_offset;
  const Plan& plan = *entry->plan;
  std::vector<double> seconds(plan.steps().size());
  pool_->arena().execute([&] {
    for (size_t s = 0; s < plan.steps().size(); ++s) {
      const auto t0 = std::chrono::steady_clock::now();
      Execute(plan, s, s + 1, ctx, scratch);
      seconds[s] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  });
  entry->Release(std::move(arena));
  return seconds;
}

}  // namespace visionserve::engine
