#include "models/onnx_eval.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "onnx.pb.h"

namespace visionserve::models::internal {

namespace {

using Shape = std::vector<int64_t>;

int64_t Numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string ShapeStr(const Shape& s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

std::shared_ptr<Const> NewLike(bool is_int, Shape shape) {
  auto c = std::make_shared<Const>();
  c->is_int = is_int;
  c->data_type = is_int ? onnx::TensorProto::INT64 : onnx::TensorProto::FLOAT;
  c->shape = std::move(shape);
  const int64_t n = Numel(c->shape);
  if (is_int) {
    c->i.resize(n);
  } else {
    c->f.resize(n);
  }
  return c;
}

// Copies element `from` of `src` to element `to` of `dst` (exact for int64).
void CopyElem(Const& dst, int64_t to, const Const& src, int64_t from) {
  if (dst.is_int) {
    dst.i[to] = src.IntAt(from);
  } else {
    dst.f[to] = static_cast<float>(src.At(from));
  }
}

void Set(Const& c, int64_t k, double v) {
  if (c.is_int) {
    c.i[k] = static_cast<int64_t>(v);
  } else {
    c.f[k] = static_cast<float>(v);
  }
}

std::vector<int64_t> Strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int k = static_cast<int>(s.size()) - 2; k >= 0; --k) st[k] = st[k + 1] * s[k + 1];
  return st;
}

absl::StatusOr<std::vector<int64_t>> IntsAttr(const onnx::NodeProto& n, std::string_view name) {
  const onnx::AttributeProto* a = FindAttr(n, absl::string_view(name.data(), name.size()));
  if (a == nullptr) return std::vector<int64_t>{};
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

std::vector<int64_t> IntsOf(const Const& c) {
  std::vector<int64_t> v(c.numel());
  for (int64_t k = 0; k < c.numel(); ++k) v[k] = c.IntAt(k);
  return v;
}

absl::Status Unimplemented(const onnx::NodeProto& n, std::string_view what) {
  return absl::UnimplementedError(absl::StrCat(n.op_type(), ": ", std::string(what)));
}

int64_t NormAxis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

// ---- elementwise ----

absl::StatusOr<ConstPtr> Binary(const onnx::NodeProto& n, const Const& a, const Const& b) {
  const size_t rank = std::max(a.shape.size(), b.shape.size());
  Shape out(rank);
  auto dim = [&](const Shape& s, size_t k) -> int64_t {
    const size_t off = rank - s.size();
    return k < off ? 1 : s[k - off];
  };
  for (size_t k = 0; k < rank; ++k) {
    const int64_t da = dim(a.shape, k), db = dim(b.shape, k);
    if (da != db && da != 1 && db != 1) {
      return absl::InvalidArgumentError(absl::StrCat(n.op_type(), ": shapes ", ShapeStr(a.shape),
                                                     " and ", ShapeStr(b.shape),
                                                     " do not broadcast"));
    }
    out[k] = std::max(da, db);
  }
  const bool is_int = a.is_int && b.is_int;
  auto c = NewLike(is_int, out);
  const std::vector<int64_t> so = Strides(out);
  std::vector<int64_t> sa(rank, 0), sb(rank, 0);
  {
    const std::vector<int64_t> ta = Strides(a.shape), tb = Strides(b.shape);
    for (size_t k = 0; k < rank; ++k) {
      const size_t oa = rank - a.shape.size(), ob = rank - b.shape.size();
      if (k >= oa && a.shape[k - oa] != 1) sa[k] = ta[k - oa];
      if (k >= ob && b.shape[k - ob] != 1) sb[k] = tb[k - ob];
    }
  }
  const std::string& op = n.op_type();
  const int64_t total = Numel(out);
  for (int64_t idx = 0; idx < total; ++idx) {
    int64_t ia = 0, ib = 0, rem = idx;
    for (size_t k = 0; k < rank; ++k) {
      const int64_t q = rem / so[k];
      rem -= q * so[k];
      ia += q * sa[k];
      ib += q * sb[k];
    }
    if (is_int) {
      const int64_t x = a.i[ia], y = b.i[ib];
      int64_t r = 0;
      if (op == "Add") r = x + y;
      if (op == "Sub") r = x - y;
      if (op == "Mul") r = x * y;
      if (op == "Div") {
        if (y == 0) return absl::InvalidArgumentError("Div: integer division by zero");
        r = x / y;
      }
      c->i[idx] = r;
    } else {
      const double x = a.At(ia), y = b.At(ib);
      double r = 0;
      if (op == "Add") r = x + y;
      if (op == "Sub") r = x - y;
      if (op == "Mul") r = x * y;
      if (op == "Div") r = x / y;
      c->f[idx] = static_cast<float>(r);
    }
  }
  return ConstPtr(std::move(c));
}

ConstPtr Unary(const Const& a, const std::function<double(double)>& f) {
  auto c = NewLike(false, a.shape);
  for (int64_t k = 0; k < a.numel(); ++k) c->f[k] = static_cast<float>(f(a.At(k)));
  return c;
}

// ---- shape ops ----

ConstPtr Reshaped(const Const& a, Shape shape) {
  auto c = std::make_shared<Const>(a);
  c->shape = std::move(shape);
  return c;
}

absl::StatusOr<ConstPtr> Reshape(const onnx::NodeProto& n, const Const& a, const Const& s) {
  Shape out = IntsOf(s);
  int infer = -1;
  int64_t known = 1;
  for (size_t k = 0; k < out.size(); ++k) {
    if (out[k] == 0) {
      if (k >= a.shape.size()) return absl::InvalidArgumentError("Reshape: 0 past the rank");
      out[k] = a.shape[k];
    }
    if (out[k] == -1) {
      if (infer >= 0) return absl::InvalidArgumentError("Reshape: two -1 dimensions");
      infer = static_cast<int>(k);
    } else if (out[k] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("Reshape: dimension ", out[k]));
    } else {
      known *= out[k];
    }
  }
  if (infer >= 0) {
    if (known == 0 || a.numel() % known != 0)
      return absl::InvalidArgumentError("Reshape: cannot infer -1");
    out[infer] = a.numel() / known;
  }
  if (Numel(out) != a.numel()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Reshape of ", ShapeStr(a.shape), " to ", ShapeStr(out), ": sizes differ"));
  }
  (void)n;
  return Reshaped(a, out);
}

absl::StatusOr<ConstPtr> Transpose(const onnx::NodeProto& n, const Const& a) {
  const int64_t rank = static_cast<int64_t>(a.shape.size());
  absl::StatusOr<std::vector<int64_t>> perm = IntsAttr(n, "perm");
  if (!perm.ok()) return perm.status();
  if (perm->empty()) {
    for (int64_t k = rank - 1; k >= 0; --k) perm->push_back(k);
  }
  if (static_cast<int64_t>(perm->size()) != rank)
    return absl::InvalidArgumentError("Transpose: perm size");
  Shape out(rank);
  for (int64_t k = 0; k < rank; ++k) out[k] = a.shape[(*perm)[k]];
  auto c = NewLike(a.is_int, out);
  const std::vector<int64_t> si = Strides(a.shape), so = Strides(out);
  for (int64_t idx = 0; idx < a.numel(); ++idx) {
    int64_t src = 0, rem = idx;
    for (int64_t k = 0; k < rank; ++k) {
      const int64_t q = rem / so[k];
      rem -= q * so[k];
      src += q * si[(*perm)[k]];
    }
    CopyElem(*c, idx, a, src);
  }
  return ConstPtr(std::move(c));
}

// Copies a box [begin, begin + size) with steps of `a` (all per axis) into a new tensor.
ConstPtr Crop(const Const& a, const Shape& begin, const Shape& size, const Shape& step) {
  auto c = NewLike(a.is_int, size);
  const std::vector<int64_t> si = Strides(a.shape), so = Strides(size);
  for (int64_t idx = 0; idx < c->numel(); ++idx) {
    int64_t src = 0, rem = idx;
    for (size_t k = 0; k < size.size(); ++k) {
      const int64_t q = rem / so[k];
      rem -= q * so[k];
      src += (begin[k] + q * step[k]) * si[k];
    }
    CopyElem(*c, idx, a, src);
  }
  return c;
}

absl::StatusOr<ConstPtr> Slice(const onnx::NodeProto& n, std::span<const ConstPtr> in,
                               int64_t opset) {
  const Const& a = *in[0];
  std::vector<int64_t> starts, ends, axes, steps;
  if (opset < 10) {
    return Unimplemented(n, "opset < 10");
  }
  if (in.size() < 3 || !in[1] || !in[2]) return absl::InvalidArgumentError("Slice: starts/ends");
  starts = IntsOf(*in[1]);
  ends = IntsOf(*in[2]);
  if (in.size() > 3 && in[3]) axes = IntsOf(*in[3]);
  if (in.size() > 4 && in[4]) steps = IntsOf(*in[4]);
  const int64_t rank = static_cast<int64_t>(a.shape.size());
  if (axes.empty()) {
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (starts.size() != ends.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return absl::InvalidArgumentError("Slice: starts, ends, axes and steps differ in length");
  Shape begin(rank, 0), size = a.shape, step(rank, 1);
  for (size_t k = 0; k < axes.size(); ++k) {
    const int64_t ax = NormAxis(axes[k], rank);
    if (ax < 0 || ax >= rank) return absl::InvalidArgumentError("Slice: axis out of range");
    const int64_t d = a.shape[ax];
    if (steps[k] == 0) return absl::InvalidArgumentError("Slice: step 0");
    auto clamp = [&](int64_t v, int64_t lo, int64_t hi) { return std::min(std::max(v, lo), hi); };
    int64_t s = starts[k] < 0 ? starts[k] + d : starts[k];
    int64_t e = ends[k] < 0 ? ends[k] + d : ends[k];
    if (steps[k] > 0) {
      s = clamp(s, 0, d);
      e = clamp(e, 0, d);
      size[ax] = std::max<int64_t>(0, (e - s + steps[k] - 1) / steps[k]);
    } else {
      s = clamp(s, 0, d - 1);
      e = clamp(e, -1, d - 1);
      size[ax] = std::max<int64_t>(0, (s - e + (-steps[k]) - 1) / (-steps[k]));
    }
    begin[ax] = s;
    step[ax] = steps[k];
  }
  return Crop(a, begin, size, step);
}

absl::StatusOr<std::vector<ConstPtr>> Split(const onnx::NodeProto& n, std::span<const ConstPtr> in,
                                            int64_t opset) {
  const Const& a = *in[0];
  const int64_t rank = static_cast<int64_t>(a.shape.size());
  absl::StatusOr<int64_t> axis_attr = IntAttr(n, "axis", 0);
  if (!axis_attr.ok()) return axis_attr.status();
  const int64_t axis = NormAxis(*axis_attr, rank);
  if (axis < 0 || axis >= rank) return absl::InvalidArgumentError("Split: axis out of range");
  std::vector<int64_t> split;
  if (opset < 13) {
    absl::StatusOr<std::vector<int64_t>> s = IntsAttr(n, "split");
    if (!s.ok()) return s.status();
    split = *s;
  } else if (in.size() > 1 && in[1]) {
    split = IntsOf(*in[1]);
  }
  const int64_t d = a.shape[axis];
  const int parts = n.output_size();
  if (split.empty()) {
    if (parts < 1) return absl::InvalidArgumentError("Split: no outputs");
    const int64_t each = (d + parts - 1) / parts;  // the last part may be smaller (opset 18)
    for (int k = 0; k < parts; ++k) split.push_back(std::min(each, d - each * k));
  }
  if (static_cast<int>(split.size()) != parts ||
      std::accumulate(split.begin(), split.end(), int64_t{0}) != d) {
    return absl::InvalidArgumentError(
        absl::StrCat("Split: sizes ", ShapeStr(split), " do not split ", d));
  }
  std::vector<ConstPtr> out;
  int64_t start = 0;
  for (int64_t s : split) {
    Shape begin(rank, 0), size = a.shape, step(rank, 1);
    begin[axis] = start;
    size[axis] = s;
    out.push_back(Crop(a, begin, size, step));
    start += s;
  }
  return out;
}

absl::StatusOr<ConstPtr> Concat(const onnx::NodeProto& n, std::span<const ConstPtr> in) {
  absl::StatusOr<int64_t> axis_attr = IntAttr(n, "axis", 0);
  if (!axis_attr.ok()) return axis_attr.status();
  const int64_t rank = static_cast<int64_t>(in[0]->shape.size());
  const int64_t axis = NormAxis(*axis_attr, rank);
  if (axis < 0 || axis >= rank) return absl::InvalidArgumentError("Concat: axis out of range");
  Shape out = in[0]->shape;
  out[axis] = 0;
  bool is_int = true;
  for (const ConstPtr& c : in) {
    if (static_cast<int64_t>(c->shape.size()) != rank)
      return absl::InvalidArgumentError("Concat: ranks differ");
    for (int64_t k = 0; k < rank; ++k) {
      if (k != axis && c->shape[k] != in[0]->shape[k]) {
        return absl::InvalidArgumentError(
            absl::StrCat("Concat: shapes ", ShapeStr(in[0]->shape), " and ", ShapeStr(c->shape)));
      }
    }
    out[axis] += c->shape[axis];
    is_int = is_int && c->is_int;
  }
  auto r = NewLike(is_int, out);
  const int64_t outer = Numel(Shape(out.begin(), out.begin() + axis));
  const int64_t inner = Numel(Shape(out.begin() + axis + 1, out.end()));
  int64_t offset = 0;
  for (const ConstPtr& c : in) {
    const int64_t chunk = c->shape[axis] * inner;
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t k = 0; k < chunk; ++k) {
        CopyElem(*r, o * out[axis] * inner + offset + k, *c, o * chunk + k);
      }
    }
    offset += chunk;
  }
  return ConstPtr(std::move(r));
}

absl::StatusOr<ConstPtr> Gather(const onnx::NodeProto& n, const Const& a, const Const& idx) {
  absl::StatusOr<int64_t> axis_attr = IntAttr(n, "axis", 0);
  if (!axis_attr.ok()) return axis_attr.status();
  const int64_t rank = static_cast<int64_t>(a.shape.size());
  const int64_t axis = NormAxis(*axis_attr, rank);
  if (axis < 0 || axis >= rank || !idx.is_int)
    return absl::InvalidArgumentError("Gather: bad axis or indices");
  Shape out(a.shape.begin(), a.shape.begin() + axis);
  out.insert(out.end(), idx.shape.begin(), idx.shape.end());
  out.insert(out.end(), a.shape.begin() + axis + 1, a.shape.end());
  auto r = NewLike(a.is_int, out);
  const int64_t outer = Numel(Shape(a.shape.begin(), a.shape.begin() + axis));
  const int64_t inner = Numel(Shape(a.shape.begin() + axis + 1, a.shape.end()));
  const int64_t d = a.shape[axis];
  int64_t w = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < idx.numel(); ++j) {
      int64_t i = idx.i[j] < 0 ? idx.i[j] + d : idx.i[j];
      if (i < 0 || i >= d) return absl::InvalidArgumentError("Gather: index out of range");
      for (int64_t k = 0; k < inner; ++k) CopyElem(*r, w++, a, (o * d + i) * inner + k);
    }
  }
  return ConstPtr(std::move(r));
}

absl::StatusOr<ConstPtr> Unsqueeze(const onnx::NodeProto& n, std::span<const ConstPtr> in,
                                   int64_t opset, bool squeeze) {
  std::vector<int64_t> axes;
  if (opset < 13) {
    absl::StatusOr<std::vector<int64_t>> a = IntsAttr(n, "axes");
    if (!a.ok()) return a.status();
    axes = *a;
  } else if (in.size() > 1 && in[1]) {
    axes = IntsOf(*in[1]);
  }
  const Const& a = *in[0];
  Shape out;
  if (squeeze) {
    const int64_t rank = static_cast<int64_t>(a.shape.size());
    for (int64_t& x : axes) x = NormAxis(x, rank);
    for (int64_t k = 0; k < rank; ++k) {
      const bool drop =
          axes.empty() ? a.shape[k] == 1 : std::find(axes.begin(), axes.end(), k) != axes.end();
      if (drop && a.shape[k] != 1) return absl::InvalidArgumentError("Squeeze: axis is not 1");
      if (!drop) out.push_back(a.shape[k]);
    }
  } else {
    const int64_t rank = static_cast<int64_t>(a.shape.size() + axes.size());
    for (int64_t& x : axes) x = NormAxis(x, rank);
    std::sort(axes.begin(), axes.end());
    size_t src = 0, ai = 0;
    for (int64_t k = 0; k < rank; ++k) {
      if (ai < axes.size() && axes[ai] == k) {
        out.push_back(1);
        ++ai;
      } else {
        if (src >= a.shape.size()) return absl::InvalidArgumentError("Unsqueeze: bad axes");
        out.push_back(a.shape[src++]);
      }
    }
  }
  return Reshaped(a, out);
}

absl::StatusOr<ConstPtr> Softmax(const onnx::NodeProto& n, const Const& a, int64_t opset) {
  const int64_t rank = static_cast<int64_t>(a.shape.size());
  absl::StatusOr<int64_t> axis_attr = IntAttr(n, "axis", opset >= 13 ? -1 : 1);
  if (!axis_attr.ok()) return axis_attr.status();
  const int64_t axis = NormAxis(*axis_attr, rank);
  if (axis < 0 || axis >= rank) return absl::InvalidArgumentError("Softmax: axis out of range");
  auto c = NewLike(false, a.shape);
  // Opset 13+: over one axis. Before: over every axis from `axis` on (the input coerced to 2-D).
  const int64_t d =
      opset >= 13 ? a.shape[axis] : Numel(Shape(a.shape.begin() + axis, a.shape.end()));
  const int64_t inner =
      opset >= 13 ? Numel(Shape(a.shape.begin() + axis + 1, a.shape.end())) : int64_t{1};
  const int64_t outer = a.numel() / (d * inner);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < inner; ++k) {
      const int64_t base = o * d * inner + k;
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < d; ++j) mx = std::max(mx, a.At(base + j * inner));
      for (int64_t j = 0; j < d; ++j) sum += std::exp(a.At(base + j * inner) - mx);
      for (int64_t j = 0; j < d; ++j)
        c->f[base + j * inner] = static_cast<float>(std::exp(a.At(base + j * inner) - mx) / sum);
    }
  }
  return ConstPtr(std::move(c));
}

// 2-D convolution, NCHW, groups 1.
absl::StatusOr<ConstPtr> Conv(const onnx::NodeProto& n, std::span<const ConstPtr> in) {
  const Const& x = *in[0];
  const Const& w = *in[1];
  const Const* b = in.size() > 2 ? in[2].get() : nullptr;
  if (x.shape.size() != 4 || w.shape.size() != 4 || w.shape[1] != x.shape[1])
    return Unimplemented(n, "only 2-D NCHW convolutions with matching channels");
  absl::StatusOr<int64_t> group = IntAttr(n, "group", 1);
  if (!group.ok() || *group != 1) return Unimplemented(n, "groups other than 1");
  int sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0;
  absl::Status s =
      SpatialAttrs(n, static_cast<int>(w.shape[2]), static_cast<int>(w.shape[3]), x.shape[2],
                   x.shape[3], true, &sh, &sw, &dh, &dw, &pt, &pl, &pb, &pr);
  if (!s.ok()) return s;
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t O = w.shape[0], KH = w.shape[2], KW = w.shape[3];
  const int64_t OH = (H + pt + pb - dh * (KH - 1) - 1) / sh + 1;
  const int64_t OW = (W + pl + pr - dw * (KW - 1) - 1) / sw + 1;
  auto c = NewLike(false, {N, O, OH, OW});
  for (int64_t nn = 0; nn < N; ++nn) {
    for (int64_t o = 0; o < O; ++o) {
      for (int64_t oy = 0; oy < OH; ++oy) {
        for (int64_t ox = 0; ox < OW; ++ox) {
          double acc = b ? b->At(o) : 0.0;
          for (int64_t ci = 0; ci < C; ++ci) {
            for (int64_t ky = 0; ky < KH; ++ky) {
              const int64_t iy = oy * sh - pt + ky * dh;
              if (iy < 0 || iy >= H) continue;
              for (int64_t kx = 0; kx < KW; ++kx) {
                const int64_t ix = ox * sw - pl + kx * dw;
                if (ix < 0 || ix >= W) continue;
                acc += x.At(((nn * C + ci) * H + iy) * W + ix) *
                       w.At(((o * C + ci) * KH + ky) * KW + kx);
              }
            }
          }
          c->f[((nn * O + o) * OH + oy) * OW + ox] = static_cast<float>(acc);
        }
      }
    }
  }
  return ConstPtr(std::move(c));
}

absl::StatusOr<ConstPtr> Range(const Const& start, const Const& limit, const Const& delta) {
  const bool is_int = start.is_int && limit.is_int && delta.is_int;
  const double s = start.At(0), l = limit.At(0), d = delta.At(0);
  if (d == 0) return absl::InvalidArgumentError("Range: delta 0");
  const int64_t count = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((l - s) / d)));
  if (count > (int64_t{1} << 26)) return absl::ResourceExhaustedError("Range: too long");
  auto c = NewLike(is_int, {count});
  for (int64_t k = 0; k < count; ++k) Set(*c, k, s + k * d);
  return ConstPtr(std::move(c));
}

}  // namespace

bool CanEvaluate(std::string_view op) {
  static constexpr std::string_view kOps[] = {
      "Identity", "Cast",  "Shape",   "Gather",  "Unsqueeze", "Squeeze", "Concat",
      "Slice",    "Split", "Reshape", "Flatten", "Transpose", "Softmax", "Sigmoid",
      "Add",      "Sub",   "Mul",     "Div",     "Conv",      "Range",   "Floor",
      "Ceil",     "Neg",   "Sqrt",    "Exp"};
  return std::find(std::begin(kOps), std::end(kOps), op) != std::end(kOps);
}

absl::StatusOr<std::vector<ConstPtr>> EvalNode(const onnx::NodeProto& n,
                                               std::span<const ConstPtr> in, int64_t opset,
                                               int64_t max_elements) {
  const std::string& op = n.op_type();
  if (!CanEvaluate(op)) return Unimplemented(n, "not evaluable");
  if (in.empty() || !in[0]) return absl::InvalidArgumentError(absl::StrCat(op, ": no input"));
  for (const ConstPtr& c : in) {
    if (c && c->numel() > max_elements) {
      return absl::ResourceExhaustedError(absl::StrCat(op, ": input too large to evaluate"));
    }
  }
  auto need = [&](size_t k) -> absl::Status {
    if (in.size() <= k || !in[k])
      return absl::InvalidArgumentError(absl::StrCat(op, ": missing input ", k));
    return absl::OkStatus();
  };
  absl::StatusOr<ConstPtr> one = absl::UnimplementedError(op);
  if (op == "Identity") {
    one = in[0];
  } else if (op == "Cast") {
    absl::StatusOr<int64_t> to = IntAttr(n, "to", 0);
    if (!to.ok()) return to.status();
    const bool to_int = *to == onnx::TensorProto::INT64 || *to == onnx::TensorProto::INT32 ||
                        *to == onnx::TensorProto::INT8 || *to == onnx::TensorProto::UINT8 ||
                        *to == onnx::TensorProto::BOOL;
    const bool to_float = *to == onnx::TensorProto::FLOAT || *to == onnx::TensorProto::DOUBLE ||
                          *to == onnx::TensorProto::FLOAT16;
    if (!to_int && !to_float)
      return Unimplemented(n, absl::StrCat("cast to ", DataTypeName(static_cast<int32_t>(*to))));
    auto c = NewLike(to_int, in[0]->shape);
    for (int64_t k = 0; k < c->numel(); ++k) {
      const double v = in[0]->At(k);
      Set(*c, k, to_int ? std::trunc(v) : v);
    }
    one = ConstPtr(std::move(c));
  } else if (op == "Shape") {
    auto c = NewLike(true, {static_cast<int64_t>(in[0]->shape.size())});
    for (size_t k = 0; k < in[0]->shape.size(); ++k) c->i[k] = in[0]->shape[k];
    absl::StatusOr<int64_t> start = IntAttr(n, "start", 0);
    absl::StatusOr<int64_t> end = IntAttr(n, "end", static_cast<int64_t>(in[0]->shape.size()));
    if (!start.ok() || !end.ok()) return absl::InvalidArgumentError("Shape: bad start/end");
    const int64_t r = static_cast<int64_t>(in[0]->shape.size());
    const int64_t s = std::clamp<int64_t>(NormAxis(*start, r), 0, r);
    const int64_t e = std::clamp<int64_t>(NormAxis(*end, r), 0, r);
    one = Crop(*c, {s}, {std::max<int64_t>(0, e - s)}, {1});
  } else if (op == "Gather") {
    if (absl::Status s = need(1); !s.ok()) return s;
    one = Gather(n, *in[0], *in[1]);
  } else if (op == "Unsqueeze" || op == "Squeeze") {
    one = Unsqueeze(n, in, opset, op == "Squeeze");
  } else if (op == "Concat") {
    for (const ConstPtr& c : in) {
      if (!c) return absl::InvalidArgumentError("Concat: missing input");
    }
    one = Concat(n, in);
  } else if (op == "Slice") {
    one = Slice(n, in, opset);
  } else if (op == "Split") {
    return Split(n, in, opset);
  } else if (op == "Reshape") {
    if (absl::Status s = need(1); !s.ok()) return s;
    one = Reshape(n, *in[0], *in[1]);
  } else if (op == "Flatten") {
    absl::StatusOr<int64_t> axis = IntAttr(n, "axis", 1);
    if (!axis.ok()) return axis.status();
    const Shape& s = in[0]->shape;
    const int64_t ax = NormAxis(*axis, static_cast<int64_t>(s.size()));
    one = Reshaped(
        *in[0], {Numel(Shape(s.begin(), s.begin() + ax)), Numel(Shape(s.begin() + ax, s.end()))});
  } else if (op == "Transpose") {
    one = Transpose(n, *in[0]);
  } else if (op == "Softmax") {
    one = Softmax(n, *in[0], opset);
  } else if (op == "Sigmoid") {
    one = Unary(*in[0], [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
  } else if (op == "Neg" || op == "Floor" || op == "Ceil") {
    auto c = NewLike(in[0]->is_int, in[0]->shape);
    for (int64_t k = 0; k < c->numel(); ++k) {
      const double v = in[0]->At(k);
      Set(*c, k, op == "Neg" ? -v : op == "Floor" ? std::floor(v) : std::ceil(v));
    }
    one = ConstPtr(std::move(c));
  } else if (op == "Sqrt") {
    one = Unary(*in[0], [](double x) { return std::sqrt(x); });
  } else if (op == "Exp") {
    one = Unary(*in[0], [](double x) { return std::exp(x); });
  } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    if (absl::Status s = need(1); !s.ok()) return s;
    one = Binary(n, *in[0], *in[1]);
  } else if (op == "Conv") {
    if (absl::Status s = need(1); !s.ok()) return s;
    one = Conv(n, in);
  } else if (op == "Range") {
    if (absl::Status s = need(2); !s.ok()) return s;
    one = Range(*in[0], *in[1], *in[2]);
  }
  if (!one.ok()) return one.status();
  if ((*one)->numel() > max_elements) {
    return absl::ResourceExhaustedError(absl::StrCat(op, ": output too large to evaluate"));
  }
  return std::vector<ConstPtr>{*std::move(one)};
}

}  // namespace visionserve::models::internal
