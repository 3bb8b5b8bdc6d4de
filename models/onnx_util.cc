#include "models/onnx_util.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "onnx.pb.h"

namespace visionserve::models::internal {

namespace {

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 31, mant = h & 1023;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mant | 1024), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

template <typename T>
T LoadLe(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // x86-64 is little-endian, as ONNX raw_data is
  return v;
}

}  // namespace

int64_t Const::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string DataTypeName(int32_t t) {
  if (onnx::TensorProto::DataType_IsValid(t)) {
    return onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(t));
  }
  return absl::StrCat("type ", t);
}

absl::StatusOr<ConstPtr> ReadTensor(const onnx::TensorProto& t, int64_t max_bytes) {
  auto c = std::make_shared<Const>();
  c->name = t.name();
  c->data_type = t.data_type();
  const std::string what = absl::StrCat("tensor '", t.name(), "'");
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    return absl::UnimplementedError(
        absl::StrCat(what,
                     " stores its data in an external file; re-export with the weights inside "
                     "the model (models under 2 GiB)"));
  }
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat(what, " has a negative dimension"));
    if (d > 0 && n > (int64_t{1} << 40) / d) {
      return absl::ResourceExhaustedError(absl::StrCat(what, " has too many elements"));
    }
    n *= d;
    c->shape.push_back(d);
  }
  int elem = 0;
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      elem = 4;
      break;
    case onnx::TensorProto::DOUBLE:
      elem = 8;
      break;
    case onnx::TensorProto::FLOAT16:
      elem = 2;
      break;
    case onnx::TensorProto::INT64:
      elem = 8;
      c->is_int = true;
      break;
    case onnx::TensorProto::INT32:
      elem = 4;
      c->is_int = true;
      break;
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::BOOL:
      elem = 1;
      c->is_int = true;
      break;
    default:
      return absl::UnimplementedError(
          absl::StrCat(what, " has unsupported data type ", DataTypeName(t.data_type())));
  }
  if (n * elem > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, " is ", n * elem, " bytes, more than the limit of ", max_bytes));
  }
  auto mismatch = [&](int64_t got) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", got, " values for its shape of ",
                                                   n, " (truncated or mistyped initializer?)"));
  };
  if (c->is_int)
    c->i.resize(n);
  else
    c->f.resize(n);
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    if (static_cast<int64_t>(raw.size()) != n * elem)
      return mismatch(static_cast<int64_t>(raw.size()) / elem);
    const char* p = raw.data();
    for (int64_t k = 0; k < n; ++k, p += elem) {
      switch (t.data_type()) {
        case onnx::TensorProto::FLOAT:
          c->f[k] = LoadLe<float>(p);
          break;
        case onnx::TensorProto::DOUBLE:
          c->f[k] = static_cast<float>(LoadLe<double>(p));
          break;
        case onnx::TensorProto::FLOAT16:
          c->f[k] = HalfToFloat(LoadLe<uint16_t>(p));
          break;
        case onnx::TensorProto::INT64:
          c->i[k] = LoadLe<int64_t>(p);
          break;
        case onnx::TensorProto::INT32:
          c->i[k] = LoadLe<int32_t>(p);
          break;
        case onnx::TensorProto::INT8:
          c->i[k] = LoadLe<int8_t>(p);
          break;
        default:
          c->i[k] = LoadLe<uint8_t>(p);
          break;
      }
    }
    return ConstPtr(std::move(c));
  }
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (t.float_data_size() != n) return mismatch(t.float_data_size());
      for (int64_t k = 0; k < n; ++k) c->f[k] = t.float_data(k);
      break;
    case onnx::TensorProto::DOUBLE:
      if (t.double_data_size() != n) return mismatch(t.double_data_size());
      for (int64_t k = 0; k < n; ++k) c->f[k] = static_cast<float>(t.double_data(k));
      break;
    case onnx::TensorProto::FLOAT16:
      if (t.int32_data_size() != n) return mismatch(t.int32_data_size());
      for (int64_t k = 0; k < n; ++k) c->f[k] = HalfToFloat(static_cast<uint16_t>(t.int32_data(k)));
      break;
    case onnx::TensorProto::INT64:
      if (t.int64_data_size() != n) return mismatch(t.int64_data_size());
      for (int64_t k = 0; k < n; ++k) c->i[k] = t.int64_data(k);
      break;
    default:
      if (t.int32_data_size() != n) return mismatch(t.int32_data_size());
      for (int64_t k = 0; k < n; ++k) c->i[k] = t.int32_data(k);
      break;
  }
  return ConstPtr(std::move(c));
}

absl::StatusOr<ConstPtr> ReadConstantNode(const onnx::NodeProto& n, int64_t max_bytes) {
  if (n.attribute_size() != 1) {
    return absl::InvalidArgumentError("a Constant node needs exactly one value attribute");
  }
  const onnx::AttributeProto& a = n.attribute(0);
  auto c = std::make_shared<Const>();
  c->name = n.output_size() > 0 ? n.output(0) : "";
  if (a.name() == "value") {
    if (!a.has_t()) return absl::InvalidArgumentError("Constant 'value' is not a tensor");
    absl::StatusOr<ConstPtr> t = ReadTensor(a.t(), max_bytes);
    if (!t.ok()) return t.status();
    auto copy = std::make_shared<Const>(**t);
    copy->name = c->name;
    return ConstPtr(std::move(copy));
  }
  if (a.name() == "value_float") {
    c->data_type = onnx::TensorProto::FLOAT;
    c->f = {a.f()};
  } else if (a.name() == "value_floats") {
    c->data_type = onnx::TensorProto::FLOAT;
    c->f.assign(a.floats().begin(), a.floats().end());
    c->shape = {static_cast<int64_t>(c->f.size())};
  } else if (a.name() == "value_int") {
    c->data_type = onnx::TensorProto::INT64;
    c->is_int = true;
    c->i = {a.i()};
  } else if (a.name() == "value_ints") {
    c->data_type = onnx::TensorProto::INT64;
    c->is_int = true;
    c->i.assign(a.ints().begin(), a.ints().end());
    c->shape = {static_cast<int64_t>(c->i.size())};
  } else {
    return absl::UnimplementedError(
        absl::StrCat("Constant attribute '", a.name(), "' is not supported"));
  }
  return ConstPtr(std::move(c));
}

const onnx::AttributeProto* FindAttr(const onnx::NodeProto& n, absl::string_view name) {
  for (const onnx::AttributeProto& a : n.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

absl::StatusOr<int64_t> IntAttr(const onnx::NodeProto& n, absl::string_view name, int64_t dflt) {
  const onnx::AttributeProto* a = FindAttr(n, name);
  if (a == nullptr) return dflt;
  if (a->type() != onnx::AttributeProto::INT) {
    return absl::InvalidArgumentError(absl::StrCat("attribute '", name, "' must be an integer"));
  }
  return a->i();
}

absl::StatusOr<float> FloatAttr(const onnx::NodeProto& n, absl::string_view name, float dflt) {
  const onnx::AttributeProto* a = FindAttr(n, name);
  if (a == nullptr) return dflt;
  if (a->type() != onnx::AttributeProto::FLOAT) {
    return absl::InvalidArgumentError(absl::StrCat("attribute '", name, "' must be a float"));
  }
  return a->f();
}

absl::Status SpatialAttrs(const onnx::NodeProto& n, int kh, int kw, int64_t in_h, int64_t in_w,
                          bool allow_dilation, int* stride_h, int* stride_w, int* dil_h, int* dil_w,
                          int* pad_top, int* pad_left, int* pad_bottom, int* pad_right) {
  auto ints = [&](absl::string_view name, size_t want,
                  std::vector<int64_t> dflt) -> absl::StatusOr<std::vector<int64_t>> {
    const onnx::AttributeProto* a = FindAttr(n, name);
    if (a == nullptr) return dflt;
    if (a->type() != onnx::AttributeProto::INTS || static_cast<size_t>(a->ints_size()) != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute '", name, "' must hold ", want, " integers"));
    }
    return std::vector<int64_t>(a->ints().begin(), a->ints().end());
  };
  absl::StatusOr<std::vector<int64_t>> ks = ints("kernel_shape", 2, {kh, kw});
  absl::StatusOr<std::vector<int64_t>> st = ints("strides", 2, {1, 1});
  absl::StatusOr<std::vector<int64_t>> dl = ints("dilations", 2, {1, 1});
  absl::StatusOr<std::vector<int64_t>> pd = ints("pads", 4, {0, 0, 0, 0});
  for (const auto* s : {&ks, &st, &dl, &pd}) {
    if (!s->ok()) return s->status();
  }
  if ((*ks)[0] != kh || (*ks)[1] != kw) {
    return absl::InvalidArgumentError("kernel_shape does not match the weight");
  }
  for (int k = 0; k < 2; ++k) {
    if ((*st)[k] < 1 || (*st)[k] > 64)
      return absl::InvalidArgumentError("strides must be in [1, 64]");
    if ((*dl)[k] < 1 || (*dl)[k] > 64)
      return absl::InvalidArgumentError("dilations must be in [1, 64]");
    if (!allow_dilation && (*dl)[k] != 1) {
      return absl::UnimplementedError("dilations other than 1 are not supported here");
    }
  }
  for (int64_t p : *pd) {
    if (p < 0 || p > 1024) return absl::InvalidArgumentError("pads must be in [0, 1024]");
  }
  std::vector<int64_t> pads = *pd;
  std::string auto_pad = "NOTSET";
  if (const onnx::AttributeProto* a = FindAttr(n, "auto_pad")) auto_pad = a->s();
  const int64_t in[2] = {in_h, in_w};
  const int64_t kernel[2] = {kh, kw};
  if (auto_pad == "VALID") {
    pads = {0, 0, 0, 0};
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (int k = 0; k < 2; ++k) {
      const int64_t out = (in[k] + (*st)[k] - 1) / (*st)[k];
      const int64_t total =
          std::max<int64_t>(0, (out - 1) * (*st)[k] + ((*dl)[k] * (kernel[k] - 1) + 1) - in[k]);
      const int64_t small = total / 2;
      pads[k] = auto_pad == "SAME_UPPER" ? small : total - small;
      pads[k + 2] = total - pads[k];
    }
  } else if (auto_pad != "NOTSET" && !auto_pad.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("auto_pad '", auto_pad, "' is not valid"));
  }
  for (int k = 0; k < 2; ++k) {
    const int64_t span = (*dl)[k] * (kernel[k] - 1) + 1;
    if (in[k] + pads[k] + pads[k + 2] < span) {
      return absl::InvalidArgumentError(
          absl::StrCat("the ", kernel[k], "-wide kernel does not fit the ", in[k], "-pixel input"));
    }
  }
  *stride_h = static_cast<int>((*st)[0]);
  *stride_w = static_cast<int>((*st)[1]);
  *dil_h = static_cast<int>((*dl)[0]);
  *dil_w = static_cast<int>((*dl)[1]);
  *pad_top = static_cast<int>(pads[0]);
  *pad_left = static_cast<int>(pads[1]);
  *pad_bottom = static_cast<int>(pads[2]);
  *pad_right = static_cast<int>(pads[3]);
  return absl::OkStatus();
}

}  // namespace visionserve::models::internal
