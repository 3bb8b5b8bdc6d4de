// GEMM microkernel throughput, single-threaded: C[M×N] = A[M×K] · B[K×N] + bias through the
// same packing, tiling and driver the GEMM ops use. Reports GFLOP/s (2·M·N·K per iteration).
//
//   kernel_bench --benchmark_filter='Gemm/avx512/1024x1024x1024'
//
// Names: Gemm/<isa>/<M>x<N>x<K>/<a>, where <a> is "direct" (A read in place with its row
// stride) or "copy" (each K block of A copied to scratch with a cache-friendly stride).
// ConvOp/<isa>/<layer> runs a whole planned conv op (indirect GEMM, im2col + GEMM, or the
// pointwise GEMM) for one image, single-threaded; ConvOp/avx512/<layer>/batch8/threads<t> runs
// one at batch 8 on t TBB workers. Their GFLOP/s count useful FLOPs only (grouped convs
// compute more).

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "engine/cpu_features.h"
#include "engine/graph.h"
#include "engine/kernels/gemm.h"
#include "engine/ops/op.h"
#include "engine/ops/registry.h"
#include "engine/tensor.h"
#include "oneapi/tbb/blocked_range.h"
#include "oneapi/tbb/parallel_for.h"
#include "oneapi/tbb/partitioner.h"
#include "oneapi/tbb/task_arena.h"

namespace visionserve::engine::kernels {
namespace {

std::vector<float> RandomVector(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (float& x : v) x = u(rng);
  return v;
}

void BM_Gemm(benchmark::State& state, Isa isa, int64_t m, int64_t n, int64_t k, bool copy_a) {
  if (isa > DetectIsa()) {
    state.SkipWithError("ISA not supported by this CPU");
    return;
  }
  FlushDenormalsOnThisThread();
  const GemmConfig& config = GetGemmConfig(isa);
  const std::vector<float> w = RandomVector(static_cast<size_t>(n * k), 1);
  const std::vector<float> bias = RandomVector(static_cast<size_t>(n), 2);
  // A and C live where the executor keeps them: in engine memory (huge pages from 2 MiB on).
  const std::vector<float> a_values = RandomVector(static_cast<size_t>(m * k), 3);
  AlignedPtr<float> a = MakeAligned<float>(a_values.size());
  std::copy(a_values.begin(), a_values.end(), a.get());
  AlignedPtr<float> c = MakeAligned<float>(static_cast<size_t>(m * n));
  std::fill_n(c.get(), m * n, 0.0f);
  const GemmPackedWeights packed = GemmPackedWeights::Pack(config, n, k, w.data(), k, bias.data());
  const GemmEpilogue epilogue = MakeGemmEpilogue(Activation::kReLU, isa);
  // Tiles as the dense GEMM op plans them.
  const GemmTiling tiling =
      PlanGemmTiling(config, m, n, k, /*num_threads=*/1, GemmTileWidth::kAllColumns);
  AlignedPtr<float> scratch = MakeAligned<float>(GemmTileScratchFloats(config, tiling.m_tile, k));

  for (auto _ : state) {
    for (int64_t t = 0; t < tiling.tiles(); ++t) {
      const int64_t m0 = (t / tiling.n_tiles) * tiling.m_tile;
      const int64_t n0 = (t % tiling.n_tiles) * tiling.n_tile;
      GemmTileArgs args;
      args.m = std::min(tiling.m_tile, m - m0);
      args.n_begin = n0;
      args.n_end = std::min(n0 + tiling.n_tile, n);
      args.a = a.get() + m0 * k;
      args.lda = k;
      args.copy_a = copy_a;
      args.c = c.get() + m0 * n;
      args.ldc = n;
      GemmTile(config, packed, epilogue, args, scratch.get());
    }
    benchmark::DoNotOptimize(c.get());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(m) * n * k,
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.SetLabel(absl::StrFormat("%s m_tile=%d n_tile=%d tiles=%d kc=%d", config.name,
                                 tiling.m_tile, tiling.n_tile, tiling.tiles(),
                                 GemmKBlock(config, k)));
}

struct ConvShape {
  const char* name;
  Dims in;
  int64_t out;
  int k, stride, pad;
  int64_t groups;
};

// Runs every tile of `op` like the executor: serially for one worker, else a TBB parallel_for
// over grain-sized chunks with per-thread scratch.
void RunOp(const Op& op, const RunContext& ctx, std::byte* scratch, size_t scratch_per_thread,
           tbb::task_arena* arena) {
  for (int stage = 0; stage < op.NumStages(); ++stage) {
    const int64_t tiles = op.NumTiles(stage);
    const int64_t grain = std::max<int64_t>(op.Grain(stage), 1);
    if (arena == nullptr || tiles <= grain) {
      op.RunTiles(stage, 0, tiles, ctx, scratch);
      continue;
    }
    arena->execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, tiles, grain),
          [&](const tbb::blocked_range<int64_t>& r) {
            const int t = std::max(0, tbb::this_task_arena::current_thread_index());
            op.RunTiles(stage, r.begin(), r.end(), ctx, scratch + t * scratch_per_thread);
          },
          tbb::simple_partitioner());
    });
  }
}

void BM_ConvOp(benchmark::State& state, Isa isa, ConvShape shape, int64_t batch, int threads) {
  if (isa > DetectIsa()) {
    state.SkipWithError("ISA not supported by this CPU");
    return;
  }
  FlushDenormalsOnThisThread();
  Graph graph;
  const ValueId x = graph.Input("x", shape.in);
  Conv2DAttrs attrs;
  attrs.out_channels = shape.out;
  attrs.kernel_h = attrs.kernel_w = shape.k;
  attrs.stride_h = attrs.stride_w = shape.stride;
  attrs.pad_top = attrs.pad_left = attrs.pad_bottom = attrs.pad_right = shape.pad;
  attrs.groups = shape.groups;
  attrs.act = Activation::kReLU;
  const ValueId y = graph.Conv2D(x, attrs, /*bias=*/true, "conv");
  graph.MarkOutput(y);
  uint32_t seed = 1;
  for (Param& p : graph.mutable_params()) {
    p.data = RandomVector(static_cast<size_t>(p.numel()), seed++);
  }
  OpPlanInput in;
  in.graph = &graph;
  in.node_index = 0;
  in.batch = batch;
  in.input_dims = {shape.in};
  in.output_dims = graph.value(y).dims;
  in.inputs = {BufferRef{BufferRef::Kind::kInput, 0, 0}};
  in.output = BufferRef{BufferRef::Kind::kOutput, 0, 0};
  in.isa = isa;
  in.num_threads = threads;
  WeightCache cache;
  in.weights = &cache;
  const bool pointwise = shape.k == 1 && shape.stride == 1 && shape.pad == 0 && shape.groups == 1;
  auto op = pointwise ? CreatePointwiseConvOp(in) : CreateGeneralConvOp(in);
  if (!op.ok()) {
    state.SkipWithError(std::string(op.status().message()).c_str());
    return;
  }
  const std::vector<float> input =
      RandomVector(static_cast<size_t>(batch * shape.in.elements()), 7);
  std::vector<float> output(static_cast<size_t>(batch * in.output_dims.elements()));
  const size_t per_thread = ((*op)->ScratchBytes() + 63) / 64 * 64;
  AlignedPtr<std::byte> scratch = MakeAligned<std::byte>(per_thread * threads + 64);
  const float* inputs[] = {input.data()};
  float* outputs[] = {output.data()};
  RunContext ctx;
  ctx.inputs = inputs;
  ctx.outputs = outputs;
  std::unique_ptr<tbb::task_arena> arena;
  if (threads > 1) {
    arena = std::make_unique<tbb::task_arena>(threads);
    arena->execute([] { FlushDenormalsOnThisThread(); });
  }
  for (auto _ : state) {
    RunOp(**op, ctx, scratch.get(), per_thread, arena.get());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>((*op)->Flops()),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.SetLabel((*op)->Describe());
}

// ResNet-50, RegNet-Y 400MF (group width 8) / 1.6GF (24), ConvNeXt-T downsample, at 224².
constexpr ConvShape kConvShapes[] = {
    {"resnet_stem_7x7s2", {224, 224, 3}, 64, 7, 2, 3, 1},
    {"resnet_3x3_64", {56, 56, 64}, 64, 3, 1, 1, 1},
    {"resnet_3x3_256", {14, 14, 256}, 256, 3, 1, 1, 1},
    {"resnet_3x3s2_512", {14, 14, 512}, 512, 3, 2, 1, 1},
    {"resnet_1x1s2_512_1024", {28, 28, 512}, 1024, 1, 2, 0, 1},
    {"regnet_stem_3x3s2", {224, 224, 3}, 32, 3, 2, 1, 1},
    {"regnet400_gw8_48", {56, 56, 48}, 48, 3, 1, 1, 6},
    {"regnet400_gw8_104", {28, 28, 104}, 104, 3, 1, 1, 13},
    {"regnet400_gw8_208", {14, 14, 208}, 208, 3, 1, 1, 26},
    {"regnet400_gw8_440", {7, 7, 440}, 440, 3, 1, 1, 55},
    {"regnet1.6_gw24_120", {28, 28, 120}, 120, 3, 1, 1, 5},
    {"regnet1.6_gw24_336", {14, 14, 336}, 336, 3, 1, 1, 14},
    {"convnext_down_2x2s2", {56, 56, 96}, 192, 2, 2, 0, 1},
};

// ConvNeXt-T stage-1 pointwise linears, a RegNet grouped conv, a ResNet 3×3.
constexpr ConvShape kScalingShapes[] = {
    {"convnext_pw_96_384", {56, 56, 96}, 384, 1, 1, 0, 1},
    {"convnext_pw_384_96", {56, 56, 384}, 96, 1, 1, 0, 1},
    {"regnet400_gw8_104", {28, 28, 104}, 104, 3, 1, 1, 13},
    {"resnet_3x3_64", {56, 56, 64}, 64, 3, 1, 1, 1},
};

struct Shape {
  int64_t m, n, k;
};

// 1024³, then ConvNeXt-T's pointwise linears at 56×56 (batch 1 and 8) and RegNet-like tiny ones.
constexpr Shape kShapes[] = {
    {1024, 1024, 1024}, {3136, 384, 96},    {3136, 96, 384},  {3136, 3072, 768},
    {3136, 768, 3072},  {3136, 48, 48},     {25088, 384, 96}, {25088, 96, 384},
    {25088, 3072, 768}, {25088, 768, 3072}, {25088, 48, 48},
};

int RegisterAll() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kPortable}) {
    for (const Shape& s : kShapes) {
      for (bool copy_a : {false, true}) {
        const std::string name = absl::StrFormat("Gemm/%s/%dx%dx%d/%s", IsaName(isa), s.m, s.n, s.k,
                                                 copy_a ? "copy" : "direct");
        benchmark::RegisterBenchmark(name.c_str(), BM_Gemm, isa, s.m, s.n, s.k, copy_a)
            ->Unit(benchmark::kMillisecond)
            ->MinTime(0.3);
      }
    }
  }
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kPortable}) {
    for (const ConvShape& s : kConvShapes) {
      const std::string name = absl::StrFormat("ConvOp/%s/%s", IsaName(isa), s.name);
      benchmark::RegisterBenchmark(name.c_str(), BM_ConvOp, isa, s, /*batch=*/1, /*threads=*/1)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.2);
    }
  }
  // Whole ops on 1 and 2 workers (a TBB arena, as the executor runs them) at batch 8.
  for (const ConvShape& s : kScalingShapes) {
    for (int threads : {1, 2}) {
      const std::string name =
          absl::StrFormat("ConvOp/%s/%s/batch8/threads%d", IsaName(Isa::kAvx512), s.name, threads);
      benchmark::RegisterBenchmark(name.c_str(), BM_ConvOp, Isa::kAvx512, s, /*batch=*/8, threads)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.2)
          ->UseRealTime();
    }
  }
  return 0;
}

const int kRegistered = RegisterAll();

}  // namespace
}  // namespace visionserve::engine::kernels
