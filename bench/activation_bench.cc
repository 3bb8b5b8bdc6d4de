// Activation kernels, single-threaded, out of place.
//
//   kernel_bench --benchmark_filter='Activation/' --benchmark_min_time=0.2
//
// Names: Activation/<isa>/<act>/<n>. n = 4096 floats (L1), 262144 (1 MiB, L2) and 4194304
// (16 MiB, beyond L2). Counters: bytes = read + written per second, elems = floats per second.

#include <cstdint>
#include <random>
#include <string>

#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "engine/activation.h"
#include "engine/cpu_features.h"
#include "engine/kernels/activation_kernels.h"
#include "engine/tensor.h"

namespace visionserve::engine::kernels {
namespace {

void BM_Activation(benchmark::State& state, Isa isa, Activation act, int64_t n) {
  if (isa > DetectIsa()) {
    state.SkipWithError("ISA not supported by this CPU");
    return;
  }
  FlushDenormalsOnThisThread();
  AlignedPtr<float> x = MakeAligned<float>(static_cast<size_t>(n));
  AlignedPtr<float> y = MakeAligned<float>(static_cast<size_t>(n));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-8.f, 8.f);
  for (int64_t i = 0; i < n; ++i) x[i] = u(rng);
  const ActivationFn fn = GetActivationKernel(act, isa);
  for (auto _ : state) {
    fn(x.get(), y.get(), n);
    benchmark::ClobberMemory();
  }
  state.counters["bytes"] = benchmark::Counter(8.0 * static_cast<double>(n) * state.iterations(),
                                               benchmark::Counter::kIsRate);
  state.counters["elems"] =
      benchmark::Counter(static_cast<double>(n) * state.iterations(), benchmark::Counter::kIsRate);
}

int RegisterAll() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kPortable}) {
    for (Activation act :
         {Activation::kReLU, Activation::kReLU6, Activation::kSiLU, Activation::kGELU,
          Activation::kSigmoid, Activation::kHardSwish, Activation::kHardSigmoid}) {
      for (int64_t n : {int64_t{4096}, int64_t{262144}, int64_t{4194304}}) {
        const std::string name =
            absl::StrFormat("Activation/%s/%s/%d", IsaName(isa), ActivationName(act), n);
        benchmark::RegisterBenchmark(name.c_str(), BM_Activation, isa, act, n);
      }
    }
  }
  return 0;
}

const int kRegistered = RegisterAll();

}  // namespace
}  // namespace visionserve::engine::kernels
