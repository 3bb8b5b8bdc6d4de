#pragma once

// Graph rewrites that turn a torchvision-shaped graph into the engine's fused ops. Each pass
// preserves the graph's function up to float rounding (tests compare RunReference before and
// after). Passes only mark nodes dead; OptimizeGraph compacts at the end.

#include "absl/status/status.h"
#include "engine/graph.h"

namespace visionserve::engine {

struct PassStats {
  int batchnorms_folded = 0;
  int layer_scales_folded = 0;
  int residuals_fused = 0;
  int activations_fused = 0;
  int squeeze_excites_fused = 0;
  int layernorms_fused = 0;
  int slices_merged = 0;
};

// Conv2D → BatchNorm (BN the conv's only consumer): BN folded into the conv's weight and bias.
int FoldBatchNorm(Graph& g);
// Conv2D/Linear (no epilogue yet) → ChannelScale: scale folded into weight and bias.
int FoldLayerScale(Graph& g);
// Concat(.., Slice(x, 0, a), Slice(x, a, b), .., Slice(x, y, C), ..) → Concat(.., x, ..): split
// halves concatenated back in order (YOLOv8's C2f) are not copied twice.
int MergeSlicesIntoConcat(Graph& g);
// Conv2D/Linear (no activation, no residual) → Add(.., other) with `other` available before
// the conv: the add (and its activation) become the conv's epilogue.
int FuseResidualAdd(Graph& g);
// Conv2D/Linear/Add (no activation) → Activation: the activation moves into the producer.
int FuseActivation(Graph& g);
// GlobalAvgPool(x) → 1×1 Conv(+bias) → act → 1×1 Conv(+bias) → Sigmoid/HardSigmoid → Mul(x, ·):
// one SqueezeExcite node.
int FuseSqueezeExcite(Graph& g);
// Depthwise Conv2D → LayerNorm → only 1×1 convs/linears: the LayerNorm's affine is folded into
// the consumers and the normalisation runs in the depthwise conv's epilogue.
int FuseLayerNorm(Graph& g);

// All of the above in dependency order, then Compact(). Fails only on a malformed graph.
absl::Status OptimizeGraph(Graph& g, PassStats* stats = nullptr);

}  // namespace visionserve::engine
