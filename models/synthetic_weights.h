#pragma once

// Deterministic synthetic weights for models without a weights file (benchmarks, demos, tests).
// They are not trained: outputs are meaningless as predictions, but activations stay finite and
// well-scaled through the whole network, so numerics and timing are representative.
//
// Scheme (for the unfused graphs models/ builds; engine passes may run afterwards):
//   - Random numbers: per parameter, a splitmix64 stream seeded with splitmix64(seed ^
//     FNV-1a(param name)), so every param's values depend only on (seed, name), not on build
//     order. "Normal" draws are Irwin–Hall sums of four 16-bit uniforms from one 64-bit draw,
//     rescaled to unit variance (bounded by ±3.46). Everything, including the statistics pass
//     below, uses integer and exactly rounded IEEE-754 double arithmetic only (own exp/erf, no
//     libm transcendental, no FMA contraction), so the bytes are identical on every platform.
//   - Conv/Linear weights: N(0, 2 / fan_in) (He, gain √2); squeeze-excite fc2 (the gate's
//     input) uses gain 0.1 so gates stay near 0.5 ± 0.05 and cannot amplify scale errors. Biases,
//     BN/LN betas: N(0, 0.1²). LayerNorm gamma ~ U(0.5, 1.5); ConvNeXt layer scale ~ U(0.05, 0.15).
//   - BatchNorm gamma by what consumes the BatchNorm's output: U(0.25, 0.75) if it feeds an Add
//     (end of a residual branch or projection shortcut, so streams grow slowly with depth);
//     U(3, 5) if it feeds SiLU, GELU or Hardswish (at unit scale these amplify any scale error by
//     ~10% per layer, which compounds over 50+ layers; at sd 3–5 they are as neutral as ReLU);
//     U(0.5, 1.5) otherwise.
//   - BatchNorm running statistics are calibrated, not random: a data-free pass propagates each
//     channel's mean and variance from a unit-normal input through the graph and sets
//     running_mean / running_var to the predicted statistics of the BatchNorm's input (±5%
//     jitter), so each BatchNorm normalises approximately as in a trained network. Convs and
//     linears map moments exactly from their weights (inputs treated as independent, outputs as
//     Gaussian); activations by quadrature over a Gaussian; values produced by an activation
//     remember their Gaussian pre-activation so that relu(stream + branch) and
//     maxpool(relu(x)) are integrated exactly rather than moment-matched; squeeze-excite gates
//     are evaluated at the channel means.
// Measured with engine::RunReference on unit-normal images at each model's native resolution:
// logits finite with a standard deviation of 0.6–2.6 for all 24 catalog models; BatchNorm output
// scales within 0.75–1.75× of their targets (checked on ResNet-50, RegNet-Y 1.6GF and 3.2GF,
// EfficientNet B0/B3/B5/B7, MobileNetV3-Large).

#include <cstdint>

#include "engine/graph.h"

namespace visionserve::models {

// Fills the data of every param of `g` (overwriting any) as described above. Deterministic in
// (graph structure, param names, seed).
void InitSyntheticWeights(engine::Graph& g, uint64_t seed);

}  // namespace visionserve::models
