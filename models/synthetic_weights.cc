#include "models/synthetic_weights.h"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <utility>
#include <vector>

// Bit-exact results need every rounding step: no fused multiply-add contraction. GCC does not
// contract in ISO C++ mode (-std=c++20); clang needs to be told.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

namespace visionserve::models {

namespace {

using engine::Activation;
using engine::Graph;
using engine::Node;
using engine::OpType;
using engine::Param;
using engine::ParamRole;
using engine::ValueId;

// ---- Platform-independent random numbers (integer ops and exact IEEE arithmetic only) ----

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

class Rng {
 public:
  Rng(uint64_t seed, std::string_view stream) : state_(seed ^ Fnv1a(stream)) {
    state_ = SplitMix64(state_);
  }
  // U[0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(SplitMix64(state_) >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Approximately N(0, 1): Irwin–Hall sum of four 16-bit uniforms, scaled to unit variance.
  double Normal() {
    const uint64_t r = SplitMix64(state_);
    double sum = 0;
    for (int i = 0; i < 4; ++i) sum += static_cast<double>((r >> (16 * i)) & 0xFFFF) + 0.5;
    constexpr double kSqrt3 = 1.7320508075688772;
    return (sum * 0x1.0p-16 - 2.0) * kSqrt3;
  }

 private:
  uint64_t state_;
};

// ---- Deterministic elementary functions for the statistics pass ----
// libm's exp/erf may differ in the last bit between platforms; these use only +, −, ×, ÷,
// nearbyint and ldexp, which IEEE-754 defines exactly.

double DetExp(double x) {
  if (x < -700) return 0;
  x = std::min(x, 700.0);
  constexpr double kInvLn2 = 1.44269504088896338700e+00;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  const double k = std::nearbyint(x * kInvLn2);
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;  // |r| <= ln2 / 2
  double p = 1;
  for (int i = 14; i >= 1; --i) p = 1 + r * p / i;  // Taylor series in Horner form
  return std::ldexp(p, static_cast<int>(k));
}

// Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): ample for moment estimates.
double DetErf(double x) {
  const double ax = std::abs(x);
  const double t = 1 / (1 + 0.3275911 * ax);
  const double poly =
      ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t;
  const double y = 1 - poly * DetExp(-ax * ax);
  return x < 0 ? -y : y;
}

constexpr double kSqrtHalf = 0.70710678118654752440;

double ApplyAct(Activation act, double x) {
  switch (act) {
    case Activation::kNone:
      return x;
    case Activation::kReLU:
      return std::max(x, 0.0);
    case Activation::kReLU6:
      return std::min(std::max(x, 0.0), 6.0);
    case Activation::kSiLU:
      return x / (1 + DetExp(-x));
    case Activation::kGELU:
      return 0.5 * x * (1 + DetErf(x * kSqrtHalf));
    case Activation::kSigmoid:
      return 1 / (1 + DetExp(-x));
    case Activation::kHardSwish:
      return x * std::min(std::max(x + 3, 0.0), 6.0) / 6;
    case Activation::kHardSigmoid:
      return std::min(std::max(x + 3, 0.0), 6.0) / 6;
  }
  return x;
}

// max(act(a), act(b)) == act(max(a, b)).
bool IsMonotone(Activation act) {
  return act == Activation::kNone || act == Activation::kReLU || act == Activation::kReLU6 ||
         act == Activation::kSigmoid || act == Activation::kHardSigmoid;
}

// Activations whose output variance grows faster than their input variance near unit scale
// (SiLU, GELU, Hardswish gain about 10% extra per unit of log-variance at sd 1, ReLU none).
// Behind BatchNorms with fixed statistics they would amplify any calibration error
// geometrically with depth; at sd 3–5 they are as neutral as ReLU.
bool IsCurved(Activation act) {
  return act == Activation::kSiLU || act == Activation::kGELU || act == Activation::kHardSwish;
}

// Quadrature nodes z_i and weights w_i (sum 1) of the standard normal on [-6, 6].
struct NormalGrid {
  std::vector<double> z, w;
  NormalGrid(int points, double step) {
    double total = 0;
    for (int i = 0; i < points; ++i) {
      const double zi = -step * (points - 1) / 2 + step * i;
      z.push_back(zi);
      w.push_back(DetExp(-0.5 * zi * zi));
      total += w.back();
    }
    for (double& wi : w) wi /= total;
  }
};

const NormalGrid& FineGrid() {
  static const NormalGrid* const kGrid = new NormalGrid(97, 0.125);
  return *kGrid;
}

// For two-dimensional integrals.
const NormalGrid& CoarseGrid() {
  static const NormalGrid* const kGrid = new NormalGrid(49, 0.25);
  return *kGrid;
}

// ---- Per-channel statistics of values ----

struct Moments {
  double mean = 0;
  double var = 1;
};

// Mean and variance of act(y) for y ~ N(in.mean, in.var).
Moments ActMoments(Activation act, Moments in) {
  if (act == Activation::kNone) return in;
  const NormalGrid& grid = FineGrid();
  const double sd = std::sqrt(std::max(in.var, 0.0));
  double m1 = 0, m2 = 0;
  for (size_t i = 0; i < grid.z.size(); ++i) {
    const double y = ApplyAct(act, in.mean + sd * grid.z[i]);
    m1 += grid.w[i] * y;
    m2 += grid.w[i] * y * y;
  }
  return {m1, std::max(m2 - m1 * m1, 0.0)};
}

// Mean and variance of the maximum of n independent standard normals.
Moments MaxOfNormals(int n) {
  const NormalGrid& grid = FineGrid();
  double total = 0, m1 = 0, m2 = 0;
  for (size_t i = 0; i < grid.z.size(); ++i) {
    const double cdf = 0.5 * (1 + DetErf(grid.z[i] * kSqrtHalf));
    double pow = 1;
    for (int k = 1; k < n; ++k) pow *= cdf;
    const double density = grid.w[i] * n * pow;
    total += density;
    m1 += density * grid.z[i];
    m2 += density * grid.z[i] * grid.z[i];
  }
  m1 /= total;
  m2 /= total;
  return {m1, std::max(m2 - m1 * m1, 0.0)};
}

// Per channel: the value is act(y) with y ~ N(pre), and has moments (mean, var). For plain
// (approximately Gaussian) values act is kNone and pre is unused.
struct ChannelStats {
  std::vector<double> mean, var;
  Activation act = Activation::kNone;
  std::vector<Moments> pre;

  size_t channels() const { return mean.size(); }
  Moments at(size_t c) const { return {mean[c], var[c]}; }
  void set(size_t c, Moments m) {
    mean[c] = m.mean;
    var[c] = m.var;
  }
  // Drops the activation description, keeping the moments.
  ChannelStats Plain() && {
    act = Activation::kNone;
    pre.clear();
    return std::move(*this);
  }
  static ChannelStats Unit(int64_t c) {
    ChannelStats s;
    s.mean.assign(c, 0.0);
    s.var.assign(c, 1.0);
    return s;
  }
};

// act(s), with s treated as Gaussian with its moments.
ChannelStats ActStats(Activation act, ChannelStats s) {
  if (act == Activation::kNone) return s;
  s.pre.resize(s.channels());
  for (size_t c = 0; c < s.channels(); ++c) {
    s.pre[c] = s.at(c);
    s.set(c, ActMoments(act, s.pre[c]));
  }
  s.act = act;
  return s;
}

// act(a + b) for independent a and b. An input that is itself an activation of a Gaussian (a
// rectified residual stream) is integrated as such: treating the skewed sum as Gaussian
// underestimates relu(a + b) by a few percent per block, which compounds along a stage.
ChannelStats AddStats(const ChannelStats& a, const ChannelStats& b, Activation act) {
  ChannelStats sum = ChannelStats::Unit(static_cast<int64_t>(a.channels()));
  for (size_t c = 0; c < a.channels(); ++c) {
    sum.set(c, {a.mean[c] + b.mean[c], a.var[c] + b.var[c]});
  }
  if (act == Activation::kNone || (a.act == Activation::kNone && b.act == Activation::kNone)) {
    return ActStats(act, std::move(sum));
  }
  const NormalGrid& grid = CoarseGrid();
  const size_t n = grid.z.size();
  std::vector<double> va(n), vb(n);
  auto sample = [&](const ChannelStats& s, size_t c, std::vector<double>& out) {
    const Moments m = s.act == Activation::kNone ? s.at(c) : s.pre[c];
    const double sd = std::sqrt(std::max(m.var, 0.0));
    for (size_t i = 0; i < n; ++i) out[i] = ApplyAct(s.act, m.mean + sd * grid.z[i]);
  };
  ChannelStats out = sum;
  out.act = act;
  out.pre.resize(a.channels());
  for (size_t c = 0; c < a.channels(); ++c) {
    sample(a, c, va);
    sample(b, c, vb);
    double m1 = 0, m2 = 0;
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        const double y = ApplyAct(act, va[i] + vb[j]);
        const double w = grid.w[i] * grid.w[j];
        m1 += w * y;
        m2 += w * y * y;
      }
    }
    out.pre[c] = sum.at(c);
    out.set(c, {m1, std::max(m2 - m1 * m1, 0.0)});
  }
  return out;
}

// Statistics of a grouped convolution / linear map: per output channel, mean = bias + Σ w·μ and
// var = Σ w²·σ² over its input channels and taps (inputs treated as independent; the output, a
// sum of many terms, as Gaussian).
ChannelStats MapStats(const Param& w, const Param* bias, const ChannelStats& in, int64_t out_c,
                      int64_t groups) {
  const int64_t in_c = static_cast<int64_t>(in.channels());
  const int64_t cin_g = in_c / groups, cout_g = out_c / groups;
  const int64_t taps = w.numel() / (out_c * cin_g);
  ChannelStats out = ChannelStats::Unit(out_c);
  for (int64_t o = 0; o < out_c; ++o) {
    const int64_t grp = o / cout_g;
    const float* wo = w.data.data() + o * cin_g * taps;
    double m = bias != nullptr ? bias->data[o] : 0.0, v = 0;
    for (int64_t ci = 0; ci < cin_g; ++ci) {
      const int64_t c = grp * cin_g + ci;
      for (int64_t t = 0; t < taps; ++t) {
        const double wv = wo[ci * taps + t];
        m += wv * in.mean[c];
        v += wv * wv * in.var[c];
      }
    }
    out.mean[o] = m;
    out.var[o] = v;
  }
  return out;
}

// BatchNorm gamma ranges by what consumes the BatchNorm's output.
enum class GammaRange {
  kNormal,    // U(0.5, 1.5)
  kResidual,  // U(0.25, 0.75): ends a residual branch or a projection shortcut
  kWide,      // U(3, 5): feeds a curved activation (IsCurved)
};

// He gain: preserves the second moment through ReLU-like activations.
constexpr double kHeGain = 1.4142135623730951;
// Squeeze-excite fc2 (the gate's input) gets a small gain so gates stay near 0.5 (± ~0.05, still
// input-dependent): the statistics pass evaluates gates at predicted channel means, and gates
// that move with a scale error spread the per-channel errors, which the next 1×1 conv turns into
// growth (EfficientNet-B5 at 456 px: worst BatchNorm scale error 24× with gain 0.5, 1.2× with
// 0.1).
constexpr double kSeGateGain = 0.1;

class Initializer {
 public:
  Initializer(Graph& g, uint64_t seed) : g_(g), seed_(seed), stats_(g.num_values()) {}

  void Run() {
    for (Param& p : g_.mutable_params()) p.data.clear();
    // How each value is consumed decides the gamma range of the BatchNorm producing it.
    std::vector<GammaRange> gamma(g_.num_values(), GammaRange::kNormal);
    for (const Node& n : g_.nodes()) {
      if (n.dead) continue;
      if (n.type == OpType::kAdd) {
        for (ValueId v : n.inputs) gamma[v] = GammaRange::kResidual;
      } else if (n.type == OpType::kActivation && IsCurved(n.attr<engine::ActivationAttrs>().act) &&
                 gamma[n.inputs[0]] == GammaRange::kNormal) {
        gamma[n.inputs[0]] = GammaRange::kWide;
      }
    }
    for (ValueId v : g_.inputs()) stats_[v] = ChannelStats::Unit(g_.value(v).dims.c);
    for (const Node& n : g_.nodes()) {
      if (n.dead || n.type == OpType::kInput) continue;
      stats_[n.output] = Visit(n, gamma[n.output]);
    }
    // Params no live node reached (none in builder graphs) still get role-based values.
    for (Param& p : g_.mutable_params()) {
      if (p.data.empty()) Fill(p);
    }
  }

 private:
  Param& P(const Node& n, size_t i) { return g_.mutable_param(n.params[i]); }
  const ChannelStats& In(const Node& n, size_t i) const { return stats_[n.inputs[i]]; }

  // Role-based random values; `gamma` selects the range of BatchNorm gammas.
  void Fill(Param& p, GammaRange gamma = GammaRange::kNormal, double weight_gain = kHeGain) {
    Rng rng(seed_, p.name);
    p.data.resize(static_cast<size_t>(p.numel()));
    const double weight_std =
        weight_gain / std::sqrt(static_cast<double>(std::max<int64_t>(p.fan_in, 1)));
    for (float& v : p.data) {
      double x = 0;
      switch (p.role) {
        case ParamRole::kWeight:
          x = weight_std * rng.Normal();
          break;
        case ParamRole::kBias:
        case ParamRole::kBnBeta:
        case ParamRole::kLnBeta:
        case ParamRole::kBnMean:
          x = 0.1 * rng.Normal();
          break;
        case ParamRole::kBnGamma:
          x = gamma == GammaRange::kResidual ? rng.Uniform(0.25, 0.75)
              : gamma == GammaRange::kWide   ? rng.Uniform(3.0, 5.0)
                                             : rng.Uniform(0.5, 1.5);
          break;
        case ParamRole::kBnVar:
        case ParamRole::kLnGamma:
          x = rng.Uniform(0.5, 1.5);
          break;
        case ParamRole::kLayerScale:
          x = rng.Uniform(0.05, 0.15);
          break;
      }
      v = static_cast<float>(x);
    }
  }

  // Fills the node's params and returns the statistics of its output.
  ChannelStats Visit(const Node& n, GammaRange gamma) {
    switch (n.type) {
      case OpType::kConv2D: {
        const auto& a = n.attr<engine::Conv2DAttrs>();
        ChannelStats s = Map(n, a.out_channels, a.groups);
        if (a.fused_channel_norm) return ChannelStats::Unit(a.out_channels);
        return a.fused_residual ? AddStats(s, In(n, 1), a.act) : ActStats(a.act, std::move(s));
      }
      case OpType::kLinear: {
        const auto& a = n.attr<engine::LinearAttrs>();
        ChannelStats s = Map(n, a.out_features, 1);
        return a.fused_residual ? AddStats(s, In(n, 1), a.act) : ActStats(a.act, std::move(s));
      }
      case OpType::kBatchNorm:
        return BatchNorm(n, gamma);
      case OpType::kActivation:
        return ActStats(n.attr<engine::ActivationAttrs>().act, ChannelStats(In(n, 0)).Plain());
      case OpType::kAdd:
        return AddStats(In(n, 0), In(n, 1), n.attr<engine::AddAttrs>().act);
      case OpType::kMul: {
        ChannelStats s = ChannelStats(In(n, 0)).Plain();
        const ChannelStats& k = In(n, 1);
        for (size_t c = 0; c < s.channels(); ++c) {
          const double m = s.mean[c] * k.mean[c];
          s.var[c] =
              (s.var[c] + s.mean[c] * s.mean[c]) * (k.var[c] + k.mean[c] * k.mean[c]) - m * m;
          s.mean[c] = m;
        }
        return s;
      }
      case OpType::kChannelScale: {
        Fill(P(n, 0));
        ChannelStats s = ChannelStats(In(n, 0)).Plain();
        const auto& scale = P(n, 0).data;
        for (size_t c = 0; c < s.channels(); ++c) {
          s.mean[c] *= scale[c];
          s.var[c] *= double{scale[c]} * scale[c];
        }
        return s;
      }
      case OpType::kLayerNorm: {
        Fill(P(n, 0));
        Fill(P(n, 1));
        const auto& gamma_ln = P(n, 0).data;
        const auto& beta = P(n, 1).data;
        ChannelStats s = ChannelStats::Unit(static_cast<int64_t>(gamma_ln.size()));
        for (size_t c = 0; c < s.channels(); ++c) {
          s.set(c, {beta[c], double{gamma_ln[c]} * gamma_ln[c]});
        }
        return s;
      }
      case OpType::kGlobalAvgPool: {
        const engine::Dims& d = g_.value(n.inputs[0]).dims;
        ChannelStats s = ChannelStats(In(n, 0)).Plain();
        for (double& v : s.var) v /= static_cast<double>(d.h * d.w);
        return s;
      }
      case OpType::kMaxPool:
        return MaxPool(n);
      case OpType::kSoftmax: {
        const size_t c = In(n, 0).channels();
        ChannelStats s;
        s.mean.assign(c, 1.0 / static_cast<double>(c));
        s.var.assign(c, 0.0);
        return s;
      }
      case OpType::kSqueezeExcite:
        return SqueezeExcite(n);
      case OpType::kConcat: {
        ChannelStats s;
        for (size_t k = 0; k < n.inputs.size(); ++k) {
          const ChannelStats& part = In(n, k);
          s.mean.insert(s.mean.end(), part.mean.begin(), part.mean.end());
          s.var.insert(s.var.end(), part.var.begin(), part.var.end());
        }
        return s;
      }
      case OpType::kUpsample:
        return In(n, 0);
      case OpType::kSlice: {
        const auto& a = n.attr<engine::SliceAttrs>();
        const ChannelStats& x = In(n, 0);
        ChannelStats s;
        s.mean.assign(x.mean.begin() + a.begin, x.mean.begin() + a.end);
        s.var.assign(x.var.begin() + a.begin, x.var.begin() + a.end);
        return s;
      }
      case OpType::kDetectDecode: {
        const size_t rows = static_cast<size_t>(g_.value(n.output).dims.h);
        ChannelStats s;
        s.mean.assign(rows, 0.5);
        s.var.assign(rows, 0.1);
        return s;
      }
      case OpType::kInput:
      case OpType::kCount:
        break;
    }
    return ChannelStats(In(n, 0)).Plain();
  }

  // Conv2D / Linear: fills weight (and bias) and returns the pre-epilogue statistics.
  ChannelStats Map(const Node& n, int64_t out_channels, int64_t groups) {
    Fill(P(n, 0));
    const bool has_bias = n.params.size() > 1;
    if (has_bias) Fill(P(n, 1));
    return MapStats(P(n, 0), has_bias ? &P(n, 1) : nullptr, In(n, 0), out_channels, groups);
  }

  // Gamma/beta random; running stats set to the predicted input statistics (±5% jitter).
  ChannelStats BatchNorm(const Node& n, GammaRange gamma_range) {
    const float eps = n.attr<engine::BatchNormAttrs>().eps;
    Param& gamma = P(n, 0);
    Param& beta = P(n, 1);
    Param& mean = P(n, 2);
    Param& var = P(n, 3);
    Fill(gamma, gamma_range);
    Fill(beta);
    const ChannelStats& in = In(n, 0);
    const size_t c = in.channels();
    mean.data.resize(c);
    var.data.resize(c);
    Rng rng(seed_, mean.name);
    ChannelStats out = ChannelStats::Unit(static_cast<int64_t>(c));
    for (size_t k = 0; k < c; ++k) {
      const double v = std::max(in.var[k], 1e-6);
      mean.data[k] = static_cast<float>(in.mean[k] + 0.05 * std::sqrt(v) * rng.Normal());
      var.data[k] = static_cast<float>(v * rng.Uniform(0.95, 1.05));
      const double scale = gamma.data[k] / std::sqrt(double{var.data[k]} + eps);
      out.set(k, {beta.data[k] + scale * (in.mean[k] - mean.data[k]), scale * scale * in.var[k]});
    }
    return out;
  }

  // Max over a window of independent inputs. A monotone activation commutes with max, so
  // maxpool(act(y)) is evaluated as act(maxpool(y)) on the Gaussian pre-activation y: the max of
  // rectified values is far from the max of a Gaussian with their moments.
  ChannelStats MaxPool(const Node& n) {
    const auto& a = n.attr<engine::MaxPoolAttrs>();
    const Moments mx = MaxOfNormals(a.kernel_h * a.kernel_w);
    const ChannelStats& in = In(n, 0);
    const bool through_act = in.act != Activation::kNone && IsMonotone(in.act);
    ChannelStats s = ChannelStats::Unit(static_cast<int64_t>(in.channels()));
    for (size_t c = 0; c < s.channels(); ++c) {
      const Moments m = through_act ? in.pre[c] : in.at(c);
      const double sd = std::sqrt(m.var);
      s.set(c, {m.mean + sd * mx.mean, m.var * mx.var});
    }
    return ActStats(through_act ? in.act : Activation::kNone, std::move(s));
  }

  // x * gate(fc2(inner(fc1(mean(x))))): the gate is evaluated at the channel means.
  ChannelStats SqueezeExcite(const Node& n) {
    const auto& a = n.attr<engine::SqueezeExciteAttrs>();
    Fill(P(n, 0));
    Fill(P(n, 1));
    Fill(P(n, 2), GammaRange::kNormal, kSeGateGain);
    Fill(P(n, 3));
    const ChannelStats& in = In(n, 0);
    const int64_t c = static_cast<int64_t>(in.channels());
    const int64_t s = a.squeeze_channels;
    const auto& w1 = P(n, 0).data;
    const auto& b1 = P(n, 1).data;
    const auto& w2 = P(n, 2).data;
    const auto& b2 = P(n, 3).data;
    std::vector<double> hidden(s);
    for (int64_t j = 0; j < s; ++j) {
      double acc = b1[j];
      for (int64_t k = 0; k < c; ++k) acc += double{w1[j * c + k]} * in.mean[k];
      hidden[j] = ApplyAct(a.inner_act, acc);
    }
    // relu(y) * g == relu(g * y) for g > 0, so a rectified input stays a rectified Gaussian.
    ChannelStats out = in;
    const bool keep_act = in.act == Activation::kReLU;
    if (!keep_act) out = std::move(out).Plain();
    for (int64_t k = 0; k < c; ++k) {
      double acc = b2[k];
      for (int64_t j = 0; j < s; ++j) acc += double{w2[k * s + j]} * hidden[j];
      const double gate = ApplyAct(a.gate_act, acc);
      out.mean[k] *= gate;
      out.var[k] *= gate * gate;
      if (keep_act) out.pre[k] = {out.pre[k].mean * gate, out.pre[k].var * gate * gate};
    }
    return out;
  }

  Graph& g_;
  uint64_t seed_;
  std::vector<ChannelStats> stats_;
};

}  // namespace

void InitSyntheticWeights(Graph& g, uint64_t seed) { Initializer(g, seed).Run(); }

}  // namespace visionserve::models
