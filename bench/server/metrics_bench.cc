// Cost of the metrics recorded per request on the hot path: one request counter, the
// end-to-end, preprocess and queue histograms, a budget counter (handles resolved up front).
//   build/release/bench/metrics_bench
#include "benchmark/benchmark.h"
#include "server/metrics/metrics.h"

namespace visionserve::metrics {
namespace {

void BM_RecordOneRequest(benchmark::State& state) {
  auto m = ServerMetrics::Create("");
  ModelMetrics* h = (*m)->AddModel("model", {"balanced", "inline"});
  double t = 0.001;
  for (auto _ : state) {
    h->requests[0][0]->Increment();
    h->request_seconds[0]->Observe(t);
    h->preprocess_seconds->Observe(t * 0.2);
    h->queue_seconds->Observe(t * 0.3);
    h->within_budget->Increment();
    t = t < 5 ? t * 1.01 : 0.001;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RecordOneRequest)->ThreadRange(1, 2)->UseRealTime();

}  // namespace
}  // namespace visionserve::metrics
