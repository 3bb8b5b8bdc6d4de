#include "engine/passes.h"

#include <cmath>
#include <utility>

namespace visionserve::engine {

namespace {

bool IsGemmLike(const Node& n) { return n.type == OpType::kConv2D || n.type == OpType::kLinear; }

bool HasEpilogue(const Node& n) {
  if (n.type == OpType::kConv2D) {
    const auto& a = n.attr<Conv2DAttrs>();
    return a.act != Activation::kNone || a.fused_residual || a.fused_channel_norm;
  }
  if (n.type == OpType::kLinear) {
    const auto& a = n.attr<LinearAttrs>();
    return a.act != Activation::kNone || a.fused_residual;
  }
  return true;
}

int64_t OutChannels(const Node& n) {
  return n.type == OpType::kConv2D ? n.attr<Conv2DAttrs>().out_channels
                                   : n.attr<LinearAttrs>().out_features;
}

// Returns the node's bias param, creating a zero one if it has none.
Param& EnsureBias(Graph& g, Node& n) {
  if (n.params.size() < 2) {
    Param b;
    b.name = g.param(n.params[0]).name + ".folded_bias";
    b.shape = {OutChannels(n)};
    b.role = ParamRole::kBias;
    b.data.assign(OutChannels(n), 0.0f);
    n.params.push_back(g.AddParam(std::move(b)));
  }
  return g.mutable_param(n.params[1]);
}

// The node `consumer` now computes what `consumer` used to output into `producer`: producer
// takes over consumer's output value, consumer dies.
void Absorb(Graph& g, int32_t producer, int32_t consumer) {
  Node& c = g.mutable_node(consumer);
  Node& p = g.mutable_node(producer);
  p.output = c.output;
  c.dead = true;
}

// The sole live consumer of value v, or -1 (also -1 when v is a graph output).
std::vector<int32_t> SoleConsumers(const Graph& g) {
  std::vector<int32_t> consumer(g.num_values(), -1);
  std::vector<int32_t> uses = g.UseCounts();
  for (int32_t i = 0; i < static_cast<int32_t>(g.nodes().size()); ++i) {
    const Node& n = g.node(i);
    if (n.dead) continue;
    for (ValueId v : n.inputs) consumer[v] = i;
  }
  for (ValueId v = 0; v < g.num_values(); ++v) {
    if (uses[v] != 1) consumer[v] = -1;
  }
  for (ValueId v : g.outputs()) consumer[v] = -1;
  return consumer;
}

// Node index producing value v given current outputs (dead nodes ignored), or -1.
std::vector<int32_t> Producers(const Graph& g) {
  std::vector<int32_t> producer(g.num_values(), -1);
  for (int32_t i = 0; i < static_cast<int32_t>(g.nodes().size()); ++i) {
    if (!g.node(i).dead) producer[g.node(i).output] = i;
  }
  return producer;
}

// Multiplies output channel o of a conv/linear weight (and bias) by s[o].
void ScaleOutputs(Graph& g, Node& n, const std::vector<double>& s) {
  Param& w = g.mutable_param(n.params[0]);
  const int64_t per_out = w.numel() / static_cast<int64_t>(s.size());
  for (size_t o = 0; o < s.size(); ++o) {
    for (int64_t k = 0; k < per_out; ++k) {
      w.data[o * per_out + k] = static_cast<float>(w.data[o * per_out + k] * s[o]);
    }
  }
}

}  // namespace

int FoldBatchNorm(Graph& g) {
  int folded = 0;
  std::vector<int32_t> consumer = SoleConsumers(g);
  for (int32_t i = 0; i < static_cast<int32_t>(g.nodes().size()); ++i) {
    Node& conv = g.mutable_node(i);
    if (conv.dead || conv.type != OpType::kConv2D || HasEpilogue(conv)) continue;
    const int32_t bi = consumer[conv.output];
    if (bi < 0 || g.node(bi).type != OpType::kBatchNorm) continue;
    const Node& bn = g.node(bi);
    const float eps = bn.attr<BatchNormAttrs>().eps;
    // Copies, not references: EnsureBias may add a parameter and move the parameter table.
    const std::vector<float> gamma = g.param(bn.params[0]).data;
    const std::vector<float> beta = g.param(bn.params[1]).data;
    const std::vector<float> mean = g.param(bn.params[2]).data;
    const std::vector<float> var = g.param(bn.params[3]).data;
    const size_t c = gamma.size();
    std::vector<double> scale(c);
    for (size_t k = 0; k < c; ++k) scale[k] = gamma[k] / std::sqrt(double{var[k]} + eps);
    ScaleOutputs(g, conv, scale);
    Param& bias = EnsureBias(g, conv);
    for (size_t k = 0; k < c; ++k) {
      bias.data[k] = static_cast<float>((bias.data[k] - mean[k]) * scale[k] + beta[k]);
    }
    Absorb(g, i, bi);
    consumer = SoleConsumers(g);
    ++folded;
  }
  return folded;
}

int FoldLayerScale(Graph& g) {
  int folded = 0;
  std::vector<int32_t> consumer = SoleConsumers(g);
  for (int32_t i = 0; i < static_cast<int32_t>(g.nodes().size()); ++i) {
    Node& n = g.mutable_node(i);
    if (n.dead || !IsGemmLike(n) || HasEpilogue(n)) continue;
    const int32_t si = consumer[n.output];
    if (si < 0 || g.node(si).type != OpType::kChannelScale) continue;
    const auto& gamma = g.param(g.node(si).params[0]).data;
    std::vector<double> s(gamma.begin(), gamma.end());
    ScaleOutputs(g, n, s);
    Param& bias = EnsureBias(g, n);
    for (size_t k = 0; k < s.size(); ++k) bias.data[k] = static_cast<float>(bias.data[k] * s[k]);
    Absorb(g, i, si);
    consumer = SoleConsumers(g);
    ++folded;
  }
  return folded;
}

int FuseResidualAdd(Graph& g) {
  int fused = 0;
  std::vector<int32_t> consumer = SoleConsumers(g);
  std::vector<int32_t> producer = Producers(g);
  for (int32_t ai = 0; ai < static_cast<int32_t>(g.nodes().size()); ++ai) {
    const Node& add = g.node(ai);
    if (add.dead || add.type != OpType::kAdd) continue;
    // Prefer the operand produced last: its producer runs after the other operand exists.
    int32_t best = -1;
    int which = -1;
    for (int k = 0; k < 2; ++k) {
      const int32_t pi = producer[add.inputs[k]];
      if (pi < 0 || consumer[add.inputs[k]] != ai) continue;
      const Node& p = g.node(pi);
      if (!IsGemmLike(p) || HasEpilogue(p)) continue;
      const ValueId other = add.inputs[1 - k];
      if (other == add.inputs[k] || producer[other] >= pi) continue;  // must exist before p
      if (pi > best) {
        best = pi;
        which = k;
      }
    }
    if (best < 0) continue;
    Node& p = g.mutable_node(best);
    const ValueId other = add.inputs[1 - which];
    const Activation act = add.attr<AddAttrs>().act;
    if (p.type == OpType::kConv2D) {
      p.attr<Conv2DAttrs>().fused_residual = true;
      p.attr<Conv2DAttrs>().act = act;
    } else {
      p.attr<LinearAttrs>().fused_residual = true;
      p.attr<LinearAttrs>().act = act;
    }
    p.inputs.push_back(other);
    Absorb(g, best, ai);
    consumer = SoleConsumers(g);
    producer = Producers(g);
    ++fused;
  }
  return fused;
}

int FuseActivation(Graph& g) {
  int fused = 0;
  std::vector<int32_t> consumer = SoleConsumers(g);
  for (int32_t i = 0; i < static_cast<int32_t>(g.nodes().size()); ++i) {
    Node& n = g.mutable_node(i);
    if (n.dead) continue;
    const int32_t ai = consumer[n.output];
    if (ai < 0 || g.node(ai).type != OpType::kActivation) continue;
    const Activation act = g.node(ai).attr<ActivationAttrs>().act;
    Activation* slot = nullptr;
    if (n.type == OpType::kConv2D && !n.attr<Conv2DAttrs>().fused_channel_norm) {
      slot = &n.attr<Conv2DAttrs>().act;
    } else if (n.type == OpType::kLinear) {
      slot = &n.attr<LinearAttrs>().act;
    } else if (n.type == OpType::kAdd) {
      slot = &n.attr<AddAttrs>().act;
    }
    if (slot == nullptr || *slot != Activation::kNone) continue;
    *slot = act;
    Absorb(g, i, ai);
    consumer = SoleConsumers(g);
    ++fused;
  }
  return fused;
}

int FuseSqueezeExcite(Graph& g) {
  int fused = 0;
  std::vector<int32_t> consumer = SoleConsumers(g);
  auto is_1x1_conv = [&](int32_t i, Activation* act) {
    if (i < 0) return false;
    const Node& n = g.node(i);
    if (n.type != OpType::kConv2D || n.params.size() < 2) return false;
    const auto& a = n.attr<Conv2DAttrs>();
    if (a.kernel_h != 1 || a.kernel_w != 1 || a.groups != 1 || a.fused_residual) return false;
    *act = a.act;
    return true;
  };
  for (int32_t pi = 0; pi < static_cast<int32_t>(g.nodes().size()); ++pi) {
    const Node& pool = g.node(pi);
    if (pool.dead || pool.type != OpType::kGlobalAvgPool) continue;
    Activation inner = Activation::kNone, gate = Activation::kNone;
    const int32_t f1 = consumer[pool.output];
    if (!is_1x1_conv(f1, &inner)) continue;
    const int32_t f2 = consumer[g.node(f1).output];
    if (!is_1x1_conv(f2, &gate)) continue;
    if (inner == Activation::kNone) continue;
    if (gate != Activation::kSigmoid && gate != Activation::kHardSigmoid) continue;
    const int32_t mi = consumer[g.node(f2).output];
    if (mi < 0 || g.node(mi).type != OpType::kMul) continue;
    const Node& mul = g.node(mi);
    const ValueId x = pool.inputs[0];
    if (mul.inputs[0] != x || mul.inputs[1] != g.node(f2).output) continue;
    Node se;
    se.type = OpType::kSqueezeExcite;
    se.name = g.node(f1).name + ".se";
    se.inputs = {x};
    se.attrs = SqueezeExciteAttrs{g.node(f1).attr<Conv2DAttrs>().out_channels, inner, gate};
    se.params = {g.node(f1).params[0], g.node(f1).params[1], g.node(f2).params[0],
                 g.node(f2).params[1]};
    se.output = mul.output;
    // Put the fused node where the Mul was, so every consumer still follows it.
    g.mutable_node(pi).dead = true;
    g.mutable_node(f1).dead = true;
    g.mutable_node(f2).dead = true;
    g.mutable_node(mi) = std::move(se);
    consumer = SoleConsumers(g);
    ++fused;
  }
  return fused;
}

int FuseLayerNorm(Graph& g) {
  int fused = 0;
  std::vector<int32_t> uses = g.UseCounts();
  for (int32_t di = 0; di < static_cast<int32_t>(g.nodes().size()); ++di) {
    Node& dw = g.mutable_node(di);
    if (dw.dead || dw.type != OpType::kConv2D) continue;
    const auto& da = dw.attr<Conv2DAttrs>();
    if (!da.is_depthwise(g.value(dw.inputs[0]).dims.c) || da.fused_channel_norm) continue;
    // Find the LayerNorm consuming dw's output alone.
    int32_t li = -1;
    for (int32_t j = di + 1; j < static_cast<int32_t>(g.nodes().size()); ++j) {
      const Node& n = g.node(j);
      if (!n.dead && !n.inputs.empty() && n.inputs[0] == dw.output) li = j;
    }
    if (li < 0 || uses[dw.output] != 1 || g.node(li).type != OpType::kLayerNorm) continue;
    const ValueId ln_out = g.node(li).output;
    std::vector<int32_t> users;
    bool ok = true;
    for (int32_t j = li + 1; j < static_cast<int32_t>(g.nodes().size()) && ok; ++j) {
      const Node& n = g.node(j);
      if (n.dead) continue;
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        if (n.inputs[k] != ln_out) continue;
        const bool pointwise =
            (n.type == OpType::kLinear ||
             (n.type == OpType::kConv2D && n.attr<Conv2DAttrs>().kernel_h == 1 &&
              n.attr<Conv2DAttrs>().kernel_w == 1 && n.attr<Conv2DAttrs>().groups == 1)) &&
            k == 0;
        if (!pointwise) ok = false;
        users.push_back(j);
      }
    }
    for (ValueId v : g.outputs()) ok = ok && v != ln_out;
    if (!ok || users.empty()) continue;
    const Node& ln = g.node(li);
    // Copies: EnsureBias below may grow (and move) the parameter table.
    const std::vector<float> gamma = g.param(ln.params[0]).data;
    const std::vector<float> beta = g.param(ln.params[1]).data;
    const int64_t c = static_cast<int64_t>(gamma.size());
    for (int32_t u : users) {
      Node& n = g.mutable_node(u);
      Param& bias = EnsureBias(g, n);
      Param& w = g.mutable_param(n.params[0]);
      const int64_t outs = OutChannels(n);
      for (int64_t o = 0; o < outs; ++o) {
        double shift = 0;
        for (int64_t k = 0; k < c; ++k) {
          shift += double{w.data[o * c + k]} * beta[k];
          w.data[o * c + k] *= gamma[k];
        }
        bias.data[o] = static_cast<float>(bias.data[o] + shift);
      }
    }
    auto& a = dw.attr<Conv2DAttrs>();
    a.fused_channel_norm = true;
    a.norm_eps = ln.attr<LayerNormAttrs>().eps;
    Absorb(g, di, li);
    uses = g.UseCounts();
    ++fused;
  }
  return fused;
}

int MergeSlicesIntoConcat(Graph& g) {
  const std::vector<int32_t> producer = Producers(g);
  int merged = 0;
  for (int32_t i = 0; i < static_cast<int32_t>(g.nodes().size()); ++i) {
    if (g.node(i).dead || g.node(i).type != OpType::kConcat) continue;
    std::vector<ValueId> inputs = g.node(i).inputs;
    std::vector<ValueId> out;
    for (size_t k = 0; k < inputs.size();) {
      const int32_t p = producer[inputs[k]];
      const Node* first = p >= 0 ? &g.node(p) : nullptr;
      if (first == nullptr || first->type != OpType::kSlice ||
          first->attr<SliceAttrs>().begin != 0) {
        out.push_back(inputs[k++]);
        continue;
      }
      // A run of slices of one value, contiguous from channel 0: does it cover the value?
      const ValueId source = first->inputs[0];
      int64_t next = 0;
      size_t end = k;
      while (end < inputs.size()) {
        const int32_t q = producer[inputs[end]];
        if (q < 0 || g.node(q).type != OpType::kSlice || g.node(q).inputs[0] != source ||
            g.node(q).attr<SliceAttrs>().begin != next) {
          break;
        }
        next = g.node(q).attr<SliceAttrs>().end;
        ++end;
        if (next == g.value(source).dims.c) break;
      }
      if (next == g.value(source).dims.c) {
        out.push_back(source);
        merged += static_cast<int>(end - k);
        k = end;
      } else {
        out.push_back(inputs[k++]);
      }
    }
    g.mutable_node(i).inputs = std::move(out);
  }
  if (merged == 0) return 0;
  // Slices nobody reads any more die.
  const std::vector<int32_t> uses = g.UseCounts();
  std::vector<bool> is_output(g.num_values(), false);
  for (ValueId v : g.outputs()) is_output[v] = true;
  for (int32_t i = 0; i < static_cast<int32_t>(g.nodes().size()); ++i) {
    Node& n = g.mutable_node(i);
    if (!n.dead && n.type == OpType::kSlice && uses[n.output] == 0 && !is_output[n.output]) {
      n.dead = true;
    }
  }
  return merged;
}

absl::Status OptimizeGraph(Graph& g, PassStats* stats) {
  if (absl::Status s = g.Validate(); !s.ok()) return s;
  PassStats local;
  local.batchnorms_folded = FoldBatchNorm(g);
  // Activations first: SE matching needs them on its convs, and an activation after a residual
  // add moves into the Add, from where FuseResidualAdd carries it into the conv.
  local.activations_fused = FuseActivation(g);
  local.squeeze_excites_fused = FuseSqueezeExcite(g);
  local.layernorms_fused = FuseLayerNorm(g);
  local.layer_scales_folded = FoldLayerScale(g);
  local.residuals_fused = FuseResidualAdd(g);
  local.activations_fused += FuseActivation(g);
  local.slices_merged = MergeSlicesIntoConcat(g);
  g.Compact();
  if (stats != nullptr) *stats = local;
  return g.Validate();
}

}  // namespace visionserve::engine
