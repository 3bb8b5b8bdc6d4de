#include "engine/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"

namespace visionserve::engine {

double ReferenceActivation(Activation act, double x) {
  switch (act) {
    case Activation::kNone:
      return x;
    case Activation::kReLU:
      return x > 0 ? x : 0;
    case Activation::kReLU6:
      return std::min(std::max(x, 0.0), 6.0);
    case Activation::kSiLU:
      return x / (1 + std::exp(-x));
    case Activation::kGELU:
      return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Activation::kSigmoid:
      return 1 / (1 + std::exp(-x));
    case Activation::kHardSwish:
      return x * std::min(std::max(x + 3, 0.0), 6.0) / 6;
    case Activation::kHardSigmoid:
      return std::min(std::max(x + 3, 0.0), 6.0) / 6;
  }
  return x;
}

namespace {

// Reads element (n, y, x, c) of an NHWC tensor.
inline float At(const Tensor& t, int64_t n, int64_t y, int64_t x, int64_t c) {
  const Dims& d = t.dims();
  return t.data()[((n * d.h + y) * d.w + x) * d.c + c];
}

void RefConv(const Graph& g, const Node& node, const std::vector<const Tensor*>& in, Tensor& out) {
  const auto& a = node.attr<Conv2DAttrs>();
  const Tensor& x = *in[0];
  const Dims& id = x.dims();
  const Dims& od = out.dims();
  const Param& w = g.param(node.params[0]);
  const float* bias = node.params.size() > 1 ? g.param(node.params[1]).data.data() : nullptr;
  const int64_t cin_g = id.c / a.groups, cout_g = od.c / a.groups;
  for (int64_t n = 0; n < out.n(); ++n) {
    for (int64_t oy = 0; oy < od.h; ++oy) {
      for (int64_t ox = 0; ox < od.w; ++ox) {
        float* o = out.data() + ((n * od.h + oy) * od.w + ox) * od.c;
        for (int64_t co = 0; co < od.c; ++co) {
          const int64_t grp = co / cout_g;
          double acc = bias ? bias[co] : 0.0;
          for (int ky = 0; ky < a.kernel_h; ++ky) {
            const int64_t iy = oy * a.stride_h - a.pad_top + ky * a.dilation_h;
            if (iy < 0 || iy >= id.h) continue;
            for (int kx = 0; kx < a.kernel_w; ++kx) {
              const int64_t ix = ox * a.stride_w - a.pad_left + kx * a.dilation_w;
              if (ix < 0 || ix >= id.w) continue;
              for (int64_t ci = 0; ci < cin_g; ++ci) {
                const float wv = w.data[((co * cin_g + ci) * a.kernel_h + ky) * a.kernel_w + kx];
                acc += static_cast<double>(wv) * At(x, n, iy, ix, grp * cin_g + ci);
              }
            }
          }
          if (a.fused_residual) acc += At(*in[1], n, oy, ox, co);
          o[co] = static_cast<float>(ReferenceActivation(a.act, acc));
        }
        if (a.fused_channel_norm) {
          double mean = 0, var = 0;
          for (int64_t c = 0; c < od.c; ++c) mean += o[c];
          mean /= od.c;
          for (int64_t c = 0; c < od.c; ++c) var += (o[c] - mean) * (o[c] - mean);
          var /= od.c;
          const double inv = 1.0 / std::sqrt(var + a.norm_eps);
          for (int64_t c = 0; c < od.c; ++c) o[c] = static_cast<float>((o[c] - mean) * inv);
        }
      }
    }
  }
}

absl::Status RunNode(const Graph& g, const Node& node, const std::vector<const Tensor*>& in,
                     Tensor& out) {
  const int64_t batch = out.n();
  const Dims& od = out.dims();
  const int64_t pixels = batch * od.h * od.w;
  const int64_t c = od.c;
  float* o = out.data();
  auto p = [&](int i) { return g.param(node.params[i]).data.data(); };
  switch (node.type) {
    case OpType::kConv2D:
      RefConv(g, node, in, out);
      return absl::OkStatus();
    case OpType::kBatchNorm: {
      const float eps = node.attr<BatchNormAttrs>().eps;
      for (int64_t i = 0; i < pixels; ++i) {
        for (int64_t k = 0; k < c; ++k) {
          const double x = in[0]->data()[i * c + k];
          o[i * c + k] = static_cast<float>(
              (x - p(2)[k]) / std::sqrt(p(3)[k] + double{eps}) * p(0)[k] + p(1)[k]);
        }
      }
      return absl::OkStatus();
    }
    case OpType::kActivation:
      for (int64_t i = 0; i < out.size(); ++i) {
        o[i] = static_cast<float>(
            ReferenceActivation(node.attr<ActivationAttrs>().act, in[0]->data()[i]));
      }
      return absl::OkStatus();
    case OpType::kAdd:
      for (int64_t i = 0; i < out.size(); ++i) {
        o[i] = static_cast<float>(ReferenceActivation(node.attr<AddAttrs>().act,
                                                      double{in[0]->data()[i]} + in[1]->data()[i]));
      }
      return absl::OkStatus();
    case OpType::kMul:
      for (int64_t n = 0; n < batch; ++n) {
        for (int64_t i = 0; i < od.h * od.w; ++i) {
          for (int64_t k = 0; k < c; ++k) {
            const int64_t idx = (n * od.h * od.w + i) * c + k;
            o[idx] = in[0]->data()[idx] * in[1]->data()[n * c + k];
          }
        }
      }
      return absl::OkStatus();
    case OpType::kChannelScale:
      for (int64_t i = 0; i < pixels; ++i) {
        for (int64_t k = 0; k < c; ++k) o[i * c + k] = in[0]->data()[i * c + k] * p(0)[k];
      }
      return absl::OkStatus();
    case OpType::kLayerNorm: {
      const double eps = node.attr<LayerNormAttrs>().eps;
      for (int64_t i = 0; i < pixels; ++i) {
        const float* x = in[0]->data() + i * c;
        double mean = 0, var = 0;
        for (int64_t k = 0; k < c; ++k) mean += x[k];
        mean /= c;
        for (int64_t k = 0; k < c; ++k) var += (x[k] - mean) * (x[k] - mean);
        var /= c;
        const double inv = 1.0 / std::sqrt(var + eps);
        for (int64_t k = 0; k < c; ++k) {
          o[i * c + k] = static_cast<float>((x[k] - mean) * inv * p(0)[k] + p(1)[k]);
        }
      }
      return absl::OkStatus();
    }
    case OpType::kUpsample: {
      const auto& a = node.attr<UpsampleAttrs>();
      for (int64_t n = 0; n < batch; ++n) {
        for (int64_t y = 0; y < od.h; ++y) {
          for (int64_t x = 0; x < od.w; ++x) {
            for (int64_t k = 0; k < c; ++k) {
              o[((n * od.h + y) * od.w + x) * c + k] =
                  At(*in[0], n, y / a.factor_h, x / a.factor_w, k);
            }
          }
        }
      }
      return absl::OkStatus();
    }
    case OpType::kConcat:
      for (int64_t i = 0; i < pixels; ++i) {
        int64_t k0 = 0;
        for (const Tensor* t : in) {
          const int64_t ck = t->dims().c;
          for (int64_t k = 0; k < ck; ++k) o[i * c + k0 + k] = t->data()[i * ck + k];
          k0 += ck;
        }
      }
      return absl::OkStatus();
    case OpType::kSlice: {
      const auto& a = node.attr<SliceAttrs>();
      const int64_t ci = in[0]->dims().c;
      for (int64_t i = 0; i < pixels; ++i) {
        for (int64_t k = 0; k < c; ++k) o[i * c + k] = in[0]->data()[i * ci + a.begin + k];
      }
      return absl::OkStatus();
    }
    case OpType::kDetectDecode: {
      const auto& a = node.attr<DetectDecodeAttrs>();
      const int64_t anchors = od.w, rows = od.h, r = a.reg_max;
      for (int64_t n = 0; n < batch; ++n) {
        float* img = o + n * rows * anchors;
        int64_t anchor = 0;
        for (size_t l = 0; l < in.size(); ++l) {
          const Dims& d = in[l]->dims();
          const double s = a.strides[l];
          for (int64_t y = 0; y < d.h; ++y) {
            for (int64_t x = 0; x < d.w; ++x, ++anchor) {
              const float* px = in[l]->image(n) + (y * d.w + x) * d.c;
              double dist[4];
              for (int side = 0; side < 4; ++side) {
                const float* bins = px + side * r;
                double m = bins[0], sum = 0, e = 0;
                for (int k = 1; k < r; ++k) m = std::max(m, double{bins[k]});
                for (int k = 0; k < r; ++k) {
                  const double w = std::exp(bins[k] - m);
                  sum += w;
                  e += w * k;
                }
                dist[side] = e / sum;
              }
              const double ax = x + 0.5, ay = y + 0.5;
              const double x1 = ax - dist[0], y1 = ay - dist[1], x2 = ax + dist[2],
                           y2 = ay + dist[3];
              img[0 * anchors + anchor] = static_cast<float>((x1 + x2) / 2 * s);
              img[1 * anchors + anchor] = static_cast<float>((y1 + y2) / 2 * s);
              img[2 * anchors + anchor] = static_cast<float>((x2 - x1) * s);
              img[3 * anchors + anchor] = static_cast<float>((y2 - y1) * s);
              for (int64_t k = 0; k < a.num_classes; ++k) {
                img[(4 + k) * anchors + anchor] =
                    static_cast<float>(ReferenceActivation(Activation::kSigmoid, px[4 * r + k]));
              }
            }
          }
        }
      }
      return absl::OkStatus();
    }
    case OpType::kGlobalAvgPool: {
      const Dims& id = in[0]->dims();
      for (int64_t n = 0; n < batch; ++n) {
        for (int64_t k = 0; k < c; ++k) {
          double s = 0;
          for (int64_t i = 0; i < id.h * id.w; ++i) s += in[0]->image(n)[i * c + k];
          o[n * c + k] = static_cast<float>(s / (id.h * id.w));
        }
      }
      return absl::OkStatus();
    }
    case OpType::kMaxPool: {
      const auto& a = node.attr<MaxPoolAttrs>();
      const Dims& id = in[0]->dims();
      for (int64_t n = 0; n < batch; ++n) {
        for (int64_t oy = 0; oy < od.h; ++oy) {
          for (int64_t ox = 0; ox < od.w; ++ox) {
            for (int64_t k = 0; k < c; ++k) {
              float m = -std::numeric_limits<float>::infinity();
              for (int ky = 0; ky < a.kernel_h; ++ky) {
                const int64_t iy = oy * a.stride_h - a.pad_top + ky;
                if (iy < 0 || iy >= id.h) continue;
                for (int kx = 0; kx < a.kernel_w; ++kx) {
                  const int64_t ix = ox * a.stride_w - a.pad_left + kx;
                  if (ix < 0 || ix >= id.w) continue;
                  m = std::max(m, At(*in[0], n, iy, ix, k));
                }
              }
              o[((n * od.h + oy) * od.w + ox) * c + k] = m;
            }
          }
        }
      }
      return absl::OkStatus();
    }
    case OpType::kLinear: {
      const auto& a = node.attr<LinearAttrs>();
      const int64_t kdim = in[0]->dims().c;
      const float* bias = node.params.size() > 1 ? p(1) : nullptr;
      for (int64_t n = 0; n < batch; ++n) {
        for (int64_t j = 0; j < c; ++j) {
          double acc = bias ? bias[j] : 0.0;
          for (int64_t k = 0; k < kdim; ++k) {
            acc += double{p(0)[j * kdim + k]} * in[0]->data()[n * kdim + k];
          }
          if (a.fused_residual) acc += in[1]->data()[n * c + j];
          o[n * c + j] = static_cast<float>(ReferenceActivation(a.act, acc));
        }
      }
      return absl::OkStatus();
    }
    case OpType::kSoftmax:
      for (int64_t i = 0; i < pixels; ++i) {
        const float* x = in[0]->data() + i * c;
        const double m = *std::max_element(x, x + c);
        double s = 0;
        for (int64_t k = 0; k < c; ++k) s += std::exp(x[k] - m);
        for (int64_t k = 0; k < c; ++k) o[i * c + k] = static_cast<float>(std::exp(x[k] - m) / s);
      }
      return absl::OkStatus();
    case OpType::kSqueezeExcite: {
      const auto& a = node.attr<SqueezeExciteAttrs>();
      const int64_t s = a.squeeze_channels;
      const int64_t hw = od.h * od.w;
      std::vector<double> pooled(c), hidden(s);
      for (int64_t n = 0; n < batch; ++n) {
        const float* x = in[0]->image(n);
        std::fill(pooled.begin(), pooled.end(), 0.0);
        for (int64_t i = 0; i < hw; ++i) {
          for (int64_t k = 0; k < c; ++k) pooled[k] += x[i * c + k];
        }
        for (double& v : pooled) v /= hw;
        for (int64_t j = 0; j < s; ++j) {
          double acc = p(1)[j];
          for (int64_t k = 0; k < c; ++k) acc += double{p(0)[j * c + k]} * pooled[k];
          hidden[j] = ReferenceActivation(a.inner_act, acc);
        }
        float* y = out.image(n);
        for (int64_t k = 0; k < c; ++k) {
          double acc = p(3)[k];
          for (int64_t j = 0; j < s; ++j) acc += double{p(2)[k * s + j]} * hidden[j];
          const double gate = ReferenceActivation(a.gate_act, acc);
          for (int64_t i = 0; i < hw; ++i) y[i * c + k] = static_cast<float>(x[i * c + k] * gate);
        }
      }
      return absl::OkStatus();
    }
    case OpType::kInput:
    case OpType::kCount:
      break;
  }
  return absl::InternalError(
      absl::StrFormat("reference: no implementation for %s", OpTypeName(node.type)));
}

}  // namespace

absl::StatusOr<std::vector<Tensor>> RunReference(const Graph& graph,
                                                 std::span<const Tensor> inputs) {
  if (inputs.size() != graph.inputs().size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("graph has %d inputs, got %d", graph.inputs().size(), inputs.size()));
  }
  const int64_t batch = inputs.empty() ? 1 : inputs[0].n();
  std::vector<Tensor> values(graph.num_values());
  std::vector<bool> have(graph.num_values(), false);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ValueId v = graph.inputs()[i];
    if (!(inputs[i].dims() == graph.value(v).dims) || inputs[i].n() != batch) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "input %d: expected %dx%s, got %dx%s", i, batch, graph.value(v).dims.ToString(),
          inputs[i].n(), inputs[i].dims().ToString()));
    }
    values[v] = Tensor(batch, inputs[i].dims());
    std::copy(inputs[i].span().begin(), inputs[i].span().end(), values[v].data());
    have[v] = true;
  }
  for (const Node& node : graph.nodes()) {
    if (node.dead) continue;
    std::vector<const Tensor*> in;
    for (ValueId v : node.inputs) {
      if (!have[v]) return absl::FailedPreconditionError("reference: value used before defined");
      in.push_back(&values[v]);
    }
    Tensor out(batch, graph.value(node.output).dims);
    if (absl::Status s = RunNode(graph, node, in, out); !s.ok()) return s;
    values[node.output] = std::move(out);
    have[node.output] = true;
  }
  std::vector<Tensor> outs;
  for (ValueId v : graph.outputs()) {
    if (!have[v]) return absl::FailedPreconditionError("reference: output never computed");
    outs.push_back(std::move(values[v]));
  }
  return outs;
}

}  // namespace visionserve::engine
