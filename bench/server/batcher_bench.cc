// The dynamic batcher's own cost: tasks through one queue with a no-op engine. Reports
// requests/s and, through the items_per_second counter's inverse, microseconds per request.
//   build/release/bench/batcher_bench
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "server/batching/dynamic_batcher.h"

namespace visionserve::batching {
namespace {

void BM_BatcherNoOpEngine(benchmark::State& state) {
  const int max_batch = static_cast<int>(state.range(0));
  const int producers = static_cast<int>(state.range(1));
  DynamicBatcher::Options o;
  o.batching.max_batch_size = max_batch;
  o.batching.max_queue_delay_us = 100;
  o.batching.max_queue_size = 1 << 16;
  o.input_floats = 16;
  o.output_floats = 4;
  o.run = [](std::span<const float* const>, std::span<float>) { return absl::OkStatus(); };
  auto b = DynamicBatcher::Create(o);
  if (!b.ok()) {
    state.SkipWithError("create failed");
    return;
  }
  constexpr int kPerIteration = 4096;
  std::vector<float> in(16), out(4 * kPerIteration);
  for (auto _ : state) {
    std::atomic<int> done{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (int i = p; i < kPerIteration; i += producers) {
          auto t = std::make_unique<BatchTask>();
          t->input = in;
          t->output = std::span<float>(out.data() + 4 * i, 4);
          t->done = [&done](const absl::Status&, const TaskTiming&) {
            done.fetch_add(1, std::memory_order_relaxed);
          };
          while (!(*b)->Enqueue(t).ok()) std::this_thread::yield();
        }
      });
    }
    for (auto& t : threads) t.join();
    while (done.load() < kPerIteration) std::this_thread::yield();
  }
  state.SetItemsProcessed(state.iterations() * kPerIteration);
  (*b)->Stop(true);
}
BENCHMARK(BM_BatcherNoOpEngine)
    ->ArgNames({"max_batch", "producers"})
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({32, 1})
    ->Args({32, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace visionserve::batching
