// Depthwise convolution kernels, single-threaded, one image per iteration (all output rows in
// one call, as one tile of the op would run them).
//
//   kernel_bench --benchmark_filter='Dwconv/' --benchmark_min_time=0.2
//
// Names: Dwconv/<isa>/<C>x<H>x<W>/k<k>s<stride>[/<epilogue>]. Counters: bytes = input + output
// traffic per second (the memory-bound figure of merit: a perfect kernel streams both once),
// flops = 2·k²·C·Ho·Wo per second.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "engine/activation.h"
#include "engine/cpu_features.h"
#include "engine/kernels/dwconv.h"
#include "engine/tensor.h"

namespace visionserve::engine::kernels {
namespace {

AlignedPtr<float> RandomAligned(int64_t n, uint32_t seed) {
  AlignedPtr<float> v = MakeAligned<float>(static_cast<size_t>(n));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < n; ++i) v[i] = u(rng);
  return v;
}

struct Shape {
  int64_t c, h, w;
  int k, stride;
  Activation act = Activation::kNone;
  bool norm = false;
};

void BM_Dwconv(benchmark::State& state, Isa isa, Shape s) {
  if (isa > DetectIsa()) {
    state.SkipWithError("ISA not supported by this CPU");
    return;
  }
  FlushDenormalsOnThisThread();
  DwconvParams p;
  p.in_h = s.h;
  p.in_w = s.w;
  p.channels = s.c;
  p.kernel_h = p.kernel_w = s.k;
  p.stride_h = p.stride_w = s.stride;
  p.pad_top = p.pad_left = s.k / 2;
  p.out_h = (s.h + 2 * (s.k / 2) - s.k) / s.stride + 1;
  p.out_w = (s.w + 2 * (s.k / 2) - s.k) / s.stride + 1;
  p.act = s.act;
  p.channel_norm = s.norm;
  const AlignedPtr<float> input = RandomAligned(s.h * s.w * s.c, 1);
  const AlignedPtr<float> weight = RandomAligned(s.c * s.k * s.k, 2);
  const AlignedPtr<float> bias = RandomAligned(s.c, 3);
  AlignedPtr<float> output = RandomAligned(p.out_h * p.out_w * s.c, 4);
  const DwconvPackedWeights packed =
      DwconvPackedWeights::Pack(s.c, s.k, s.k, weight.get(), bias.get());
  const DwconvKernel kernel = GetDwconvKernel(isa, s.k, s.k, s.stride, s.stride, 1, 1);
  AlignedPtr<float> scratch = MakeAligned<float>(static_cast<size_t>(DwconvScratchFloats(p)));
  for (auto _ : state) {
    kernel.fn(p, input.get(), packed.weights(), packed.bias(), nullptr, output.get(),
              {0, p.out_h, 0, s.c}, scratch.get());
    benchmark::ClobberMemory();
  }
  const double in_bytes = 4.0 * s.h * s.w * s.c;
  const double out_bytes = 4.0 * p.out_h * p.out_w * s.c;
  const double flops = 2.0 * s.k * s.k * s.c * p.out_h * p.out_w;
  state.counters["bytes"] =
      benchmark::Counter((in_bytes + out_bytes) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["flops"] =
      benchmark::Counter(flops * state.iterations(), benchmark::Counter::kIsRate);
  state.SetLabel(std::string(kernel.name));
}

int RegisterAll() {
  const Shape shapes[] = {
      {384, 56, 56, 7, 1},                          // the brief's large 7×7
      {96, 56, 56, 7, 1, Activation::kNone, true},  // ConvNeXt-T stage 1 + fused channel norm
      {96, 112, 112, 3, 1},                         // EfficientNet/MobileNet early 3×3
      {96, 112, 112, 3, 2},
      {144, 56, 56, 3, 1, Activation::kSiLU},  // EfficientNet-B0 block 2 (+ SiLU)
      {240, 28, 28, 5, 2, Activation::kSiLU},
      {672, 14, 14, 5, 1},
      {1152, 7, 7, 5, 1, Activation::kSiLU},
  };
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kPortable}) {
    for (const Shape& s : shapes) {
      const std::string name = absl::StrFormat(
          "Dwconv/%s/%dx%dx%d/k%ds%d%s%s%s", IsaName(isa), s.c, s.h, s.w, s.k, s.stride,
          s.act != Activation::kNone ? "/" : "",
          s.act != Activation::kNone ? ActivationName(s.act) : "", s.norm ? "/norm" : "");
      benchmark::RegisterBenchmark(name.c_str(), BM_Dwconv, isa, s)->Unit(benchmark::kMicrosecond);
    }
  }
  return 0;
}

const int kRegistered = RegisterAll();

}  // namespace
}  // namespace visionserve::engine::kernels
