#include "models/onnx.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "engine/executor.h"
#include "gtest/gtest.h"
#include "onnx.pb.h"

namespace visionserve::models {
namespace {

using engine::CompiledModel;
using engine::CompileOptions;
using engine::Graph;

std::vector<float> RunGraph(Graph g, int64_t batch, uint32_t seed) {
  const engine::Dims in = g.value(g.inputs()[0]).dims;
  const engine::Dims out = g.value(g.outputs()[0]).dims;
  CompileOptions co;
  co.num_threads = 1;
  co.batch_sizes = {batch};
  co.max_batch_size = batch;
  auto m = CompiledModel::Create(std::move(g), co);
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return {};
  std::vector<float> x(batch * in.elements());
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  std::vector<float> y(batch * out.elements());
  EXPECT_TRUE((*m)->Run(batch, x, y).ok());
  return y;
}

// ---- zoo → ONNX → import ----

struct RoundTripCase {
  const char* model;
  int64_t opset;
};

class OnnxRoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(OnnxRoundTripTest, ExportThenImportGivesIdenticalOutputs) {
  const RoundTripCase& c = GetParam();
  BuildOptions bo;
  bo.input_size = 64;
  bo.seed = 11;
  auto zoo = BuildModel(c.model, bo);
  ASSERT_TRUE(zoo.ok()) << zoo.status();
  OnnxExportOptions eo;
  eo.opset = c.opset;
  auto bytes = ExportOnnx(*zoo, eo);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto imported = ImportOnnx(*bytes);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->info.opset, c.opset);
  EXPECT_EQ(imported->info.num_classes, 1000);
  EXPECT_EQ(imported->info.height, 64);
  EXPECT_EQ(imported->graph.ParameterCount(), zoo->ParameterCount());
  EXPECT_EQ(imported->graph.Macs(), zoo->Macs());
  const std::vector<float> want = RunGraph(*std::move(zoo), 2, 5);
  const std::vector<float> got = RunGraph(std::move(imported->graph), 2, 5);
  ASSERT_EQ(want.size(), got.size());
  EXPECT_EQ(want, got);
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, OnnxRoundTripTest,
    ::testing::Values(RoundTripCase{"regnet_y_400mf", 17}, RoundTripCase{"regnet_x_400mf", 13},
                      RoundTripCase{"convnext_tiny", 17}, RoundTripCase{"convnext_tiny", 13},
                      RoundTripCase{"efficientnet_b0", 13}, RoundTripCase{"mobilenet_v3_small", 13},
                      RoundTripCase{"mobilenet_v3_small", 14}, RoundTripCase{"mobilenet_v2", 17},
                      RoundTripCase{"resnet50", 17}),
    [](const auto& info) {
      return std::string(info.param.model) + "_opset" + std::to_string(info.param.opset);
    });

TEST(OnnxExportTest, UpsampleAndConcatRoundTrip) {
  Graph g;
  engine::Conv2DAttrs down;
  down.out_channels = 8;
  down.kernel_h = down.kernel_w = 3;
  down.stride_h = down.stride_w = 2;
  down.pad_top = down.pad_left = down.pad_bottom = down.pad_right = 1;
  const engine::ValueId x = g.Input("input", engine::Dims{16, 16, 3});
  const engine::ValueId a = g.Conv2D(x, down, true, "a");
  const engine::ValueId b = g.Conv2D(a, down, true, "b");
  const engine::ValueId up = g.Upsample(b, 2, 2);
  const engine::ValueId cat = g.Concat(std::vector<engine::ValueId>{up, a});
  const engine::ValueId y = g.Linear(g.GlobalAvgPool(cat), 4, true, "fc");
  g.MarkOutput(y);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (engine::Param& p : g.mutable_params()) {
    p.data.resize(p.numel());
    for (float& v : p.data) v = u(rng);
  }
  auto bytes = ExportOnnx(g);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto back = ImportOnnx(*bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  int upsamples = 0, concats = 0;
  for (const engine::Node& n : back->graph.nodes()) {
    upsamples += n.type == engine::OpType::kUpsample;
    concats += n.type == engine::OpType::kConcat;
  }
  EXPECT_EQ(upsamples, 1);
  EXPECT_EQ(concats, 1);
  EXPECT_EQ(RunGraph(std::move(back->graph), 2, 4), RunGraph(std::move(g), 2, 4));
}

TEST(OnnxExportTest, RejectsOpsetsItCannotWrite) {
  auto zoo = BuildModel("mobilenet_v2", BuildOptions{.input_size = 32});
  ASSERT_TRUE(zoo.ok());
  OnnxExportOptions eo;
  eo.opset = 11;
  auto bytes = ExportOnnx(*zoo, eo);
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- weights from an ONNX file into a zoo model ----

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/visionserve_onnx_test_" + std::to_string(getpid()) +
         "_" + name;
}

TEST(OnnxWeightsTest, ZooModelLoadsTheWeightsOfAnExport) {
  BuildOptions seed3{.input_size = 64, .seed = 3};
  auto source = BuildModel("mobilenet_v3_small", seed3);
  ASSERT_TRUE(source.ok());
  const std::string path = TempPath("mnv3.onnx");
  OnnxExportOptions eo;
  eo.opset = 13;
  ASSERT_TRUE(ExportOnnxFile(*source, path, eo).ok());
  OnnxModelInfo info;
  auto loaded = BuildModelWithOnnxWeights("mobilenet_v3_small", path,
                                          BuildOptions{.input_size = 64, .seed = 0}, {}, &info);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(info.sha256.size(), 64u);
  const std::vector<float> want = RunGraph(*std::move(source), 1, 9);
  const std::vector<float> got = RunGraph(*std::move(loaded), 1, 9);
  EXPECT_EQ(want, got);
  // The seed-0 model really differs, so the weights did come from the file.
  auto seed0 = BuildModel("mobilenet_v3_small", BuildOptions{.input_size = 64, .seed = 0});
  ASSERT_TRUE(seed0.ok());
  EXPECT_NE(RunGraph(*std::move(seed0), 1, 9), want);

  auto wrong = BuildModelWithOnnxWeights("mobilenet_v2", path, BuildOptions{.input_size = 64});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(wrong.status().message(), "is not a mobilenet_v2"))
      << wrong.status();
  std::remove(path.c_str());
}

TEST(OnnxWeightsTest, MissingFileIsNotFound) {
  auto m = BuildModelWithOnnxWeights("mobilenet_v2", "/nonexistent/r.onnx");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "/nonexistent/r.onnx"));
}

// ---- hand-built models: patterns and errors ----

onnx::TensorProto FloatTensor(const std::string& name, std::vector<int64_t> dims, float scale,
                              uint32_t seed) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  int64_t n = 1;
  for (int64_t d : dims) {
    t.add_dims(d);
    n *= d;
  }
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t k = 0; k < n; ++k) t.add_float_data(u(rng));
  return t;
}

onnx::TensorProto Scalar(const std::string& name, float v) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_float_data(v);
  return t;
}

onnx::NodeProto* AddNode(onnx::GraphProto* g, const std::string& op,
                         std::vector<std::string> inputs, const std::string& output) {
  onnx::NodeProto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(op + "_" + output);
  for (const std::string& i : inputs) n->add_input(i);
  n->add_output(output);
  return n;
}

void SetInts(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void SetInt(onnx::NodeProto* n, const std::string& name, int64_t v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void SetShape(onnx::ValueInfoProto* vi, const std::string& name, std::vector<int64_t> dims) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) {
    auto* dim = tt->mutable_shape()->add_dim();
    if (d < 0) {
      dim->set_dim_param("batch");
    } else {
      dim->set_dim_value(d);
    }
  }
}

// input [N, 3, 8, 8] → Conv 3→4 3×3 pad 1 → <body> → GlobalAveragePool → Flatten → Gemm 4→5.
// `body` appends nodes from "conv" and returns its output name.
template <typename Body>
onnx::ModelProto TinyModel(Body body, int64_t opset = 13) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  m.set_producer_name("test");
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  onnx::GraphProto* g = m.mutable_graph();
  SetShape(g->add_input(), "x", {-1, 3, 8, 8});
  *g->add_initializer() = FloatTensor("conv.weight", {4, 3, 3, 3}, 0.5f, 1);
  *g->add_initializer() = FloatTensor("conv.bias", {4}, 0.5f, 2);
  *g->add_initializer() = FloatTensor("fc.weight", {5, 4}, 0.5f, 3);
  *g->add_initializer() = FloatTensor("fc.bias", {5}, 0.5f, 4);
  onnx::NodeProto* conv = AddNode(g, "Conv", {"x", "conv.weight", "conv.bias"}, "conv");
  SetInts(conv, "pads", {1, 1, 1, 1});
  SetInts(conv, "kernel_shape", {3, 3});
  const std::string body_out = body(g);
  AddNode(g, "GlobalAveragePool", {body_out}, "gap");
  SetInt(AddNode(g, "Flatten", {"gap"}, "flat"), "axis", 1);
  SetInt(AddNode(g, "Gemm", {"flat", "fc.weight", "fc.bias"}, "y"), "transB", 1);
  SetShape(g->add_output(), "y", {-1, 5});
  return m;
}
onnx::ModelProto TinyModel() {
  return TinyModel([](onnx::GraphProto*) { return std::string("conv"); });
}

absl::StatusOr<ImportedOnnx> Import(const onnx::ModelProto& m, OnnxImportOptions opts = {}) {
  return ImportOnnx(m.SerializeAsString(), opts);
}

int CountActivations(const Graph& g, engine::Activation act) {
  int n = 0;
  for (const engine::Node& node : g.nodes()) {
    if (node.type == engine::OpType::kActivation &&
        node.attr<engine::ActivationAttrs>().act == act) {
      ++n;
    }
  }
  return n;
}

void ExpectError(const absl::StatusOr<ImportedOnnx>& r, absl::StatusCode code,
                 std::vector<std::string> fragments) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status();
  for (const std::string& f : fragments) {
    EXPECT_TRUE(absl::StrContains(r.status().message(), f)) << r.status() << " lacks: " << f;
  }
}

TEST(OnnxImportTest, TinyModelImportsAndRuns) {
  auto r = Import(TinyModel());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->info.input_name, "x");
  EXPECT_EQ(r->info.output_name, "y");
  EXPECT_EQ(r->info.channels, 3);
  EXPECT_EQ(r->info.num_classes, 5);
  EXPECT_EQ(r->info.onnx_nodes, 4);
  EXPECT_EQ(r->graph.value(r->graph.outputs()[0]).name, "logits");
  EXPECT_EQ(r->graph.ParameterCount(), 4 * 27 + 4 + 20 + 5);
  EXPECT_EQ(RunGraph(std::move(r->graph), 2, 1).size(), 10u);
}

TEST(OnnxImportTest, RecognisesGeluInBothOperandOrders) {
  for (bool half_first : {false, true}) {
    SCOPED_TRACE(half_first);
    auto m = TinyModel([&](onnx::GraphProto* g) {
      *g->add_initializer() = Scalar("sqrt2", static_cast<float>(M_SQRT2));
      *g->add_initializer() = Scalar("one", 1.0f);
      *g->add_initializer() = Scalar("half", 0.5f);
      AddNode(g, "Div", {"conv", "sqrt2"}, "d");
      AddNode(g, "Erf", {"d"}, "e");
      AddNode(g, "Add", {"e", "one"}, "a");
      if (half_first) {
        AddNode(g, "Mul", {"conv", "half"}, "h");
        AddNode(g, "Mul", {"h", "a"}, "gelu");
      } else {
        AddNode(g, "Mul", {"conv", "a"}, "m");
        AddNode(g, "Mul", {"m", "half"}, "gelu");
      }
      return std::string("gelu");
    });
    auto r = Import(m);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(CountActivations(r->graph, engine::Activation::kGELU), 1);
    for (const engine::Node& n : r->graph.nodes()) {
      EXPECT_NE(n.type, engine::OpType::kChannelScale) << "pattern not fused";
    }
  }
}

TEST(OnnxImportTest, RecognisesSiluAndHardSwishAndKeepsAPlainSigmoid) {
  auto m = TinyModel([](onnx::GraphProto* g) {
    AddNode(g, "Sigmoid", {"conv"}, "s");
    AddNode(g, "Mul", {"s", "conv"}, "silu");  // either operand order
    onnx::NodeProto* hs = AddNode(g, "HardSigmoid", {"silu"}, "hsig");
    onnx::AttributeProto* a = hs->add_attribute();
    a->set_name("alpha");
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(1.0f / 6.0f);
    AddNode(g, "Mul", {"silu", "hsig"}, "hswish");
    AddNode(g, "Sigmoid", {"hswish"}, "sig");
    return std::string("sig");
  });
  auto r = Import(m);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(CountActivations(r->graph, engine::Activation::kSiLU), 1);
  EXPECT_EQ(CountActivations(r->graph, engine::Activation::kHardSwish), 1);
  EXPECT_EQ(CountActivations(r->graph, engine::Activation::kSigmoid), 1);
}

TEST(OnnxImportTest, UnsupportedOpNamesTheOpAndNode) {
  auto m = TinyModel([](onnx::GraphProto* g) {
    AddNode(g, "Tanh", {"conv"}, "t");
    return std::string("t");
  });
  ExpectError(Import(m), absl::StatusCode::kUnimplemented, {"'Tanh'", "'Tanh_t'", "node #1"});
}

TEST(OnnxImportTest, UnsupportedAttributeValuesAreNamed) {
  auto m = TinyModel();
  SetInt(m.mutable_graph()->mutable_node(3), "transA", 1);
  ExpectError(Import(m), absl::StatusCode::kUnimplemented, {"transA=1", "Gemm"});

  auto pool = TinyModel([](onnx::GraphProto* g) {
    onnx::NodeProto* p = AddNode(g, "MaxPool", {"conv"}, "p");
    SetInts(p, "kernel_shape", {3, 3});
    SetInt(p, "ceil_mode", 1);
    return std::string("p");
  });
  ExpectError(Import(pool), absl::StatusCode::kUnimplemented, {"ceil_mode", "MaxPool"});

  auto clip = TinyModel([](onnx::GraphProto* g) {
    *g->add_initializer() = Scalar("lo", -1.0f);
    *g->add_initializer() = Scalar("hi", 1.0f);
    AddNode(g, "Clip", {"conv", "lo", "hi"}, "c");
    return std::string("c");
  });
  ExpectError(Import(clip), absl::StatusCode::kUnimplemented, {"Clip(-1, 1)"});
}

TEST(OnnxImportTest, SymbolicSpatialSizeNeedsAnInputSize) {
  auto m = TinyModel();
  auto* dims =
      m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  dims->mutable_dim(2)->set_dim_param("height");
  dims->mutable_dim(3)->set_dim_param("width");
  ExpectError(Import(m), absl::StatusCode::kInvalidArgument, {"symbolic height", "'height'"});
  OnnxImportOptions sixteen;
  sixteen.input_size = 16;
  auto sized = Import(m, sixteen);
  ASSERT_TRUE(sized.ok()) << sized.status();
  EXPECT_EQ(sized->info.height, 16);
  // A fixed size that contradicts the requested one is an error too.
  ExpectError(Import(TinyModel(), sixteen), absl::StatusCode::kInvalidArgument, {"fixed at 8×8"});
}

TEST(OnnxImportTest, MissingInitializerIsNamed) {
  auto m = TinyModel();
  m.mutable_graph()->mutable_initializer()->DeleteSubrange(0, 1);  // conv.weight
  ExpectError(Import(m), absl::StatusCode::kInvalidArgument,
              {"'conv.weight'", "missing initializer"});
}

TEST(OnnxImportTest, MistypedInitializersAreNamed) {
  auto m = TinyModel();
  onnx::TensorProto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_data_type(onnx::TensorProto::INT64);
  for (int k = 0; k < 4 * 27; ++k) w->add_int64_data(1);
  ExpectError(Import(m), absl::StatusCode::kInvalidArgument,
              {"'conv.weight'", "INT64", "expected float"});

  auto short_data = TinyModel();
  onnx::TensorProto* b = short_data.mutable_graph()->mutable_initializer(1);
  b->clear_float_data();
  b->set_raw_data(std::string(12, '\0'));  // 3 floats for 4 channels
  ExpectError(Import(short_data), absl::StatusCode::kInvalidArgument,
              {"'conv.bias'", "3 values", "4"});

  auto strings = TinyModel();
  strings.mutable_graph()->mutable_initializer(1)->set_data_type(onnx::TensorProto::STRING);
  ExpectError(Import(strings), absl::StatusCode::kUnimplemented, {"'conv.bias'", "STRING"});

  auto bad_shape = TinyModel();
  onnx::TensorProto* w2 = bad_shape.mutable_graph()->mutable_initializer(0);
  w2->set_dims(1, 2);  // [4, 2, 3, 3] for 3 input channels
  w2->mutable_float_data()->Truncate(4 * 2 * 9);
  ExpectError(Import(bad_shape), absl::StatusCode::kInvalidArgument,
              {"does not fit 3 input channels"});
}

TEST(OnnxImportTest, TruncatedAndForeignFilesAreRejected) {
  const std::string bytes = TinyModel().SerializeAsString();
  for (size_t cut : {bytes.size() / 2, bytes.size() - 3, size_t{7}}) {
    auto r = ImportOnnx(std::string_view(bytes).substr(0, cut));
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  }
  ExpectError(ImportOnnx("#!/bin/sh\necho this is not a model\n"),
              absl::StatusCode::kInvalidArgument, {"not"});
  ExpectError(ImportOnnx(""), absl::StatusCode::kInvalidArgument, {"empty"});
  ExpectError(ImportOnnxFile("/nonexistent/model.onnx"), absl::StatusCode::kNotFound,
              {"/nonexistent/model.onnx"});
}

TEST(OnnxImportTest, SizeLimitsAreEnforced) {
  ExpectError(Import(TinyModel(), OnnxImportOptions{.limits = {.max_file_bytes = 100}}),
              absl::StatusCode::kResourceExhausted, {"limit of 100"});
  ExpectError(Import(TinyModel(), OnnxImportOptions{.limits = {.max_tensor_bytes = 64}}),
              absl::StatusCode::kResourceExhausted, {"'conv.weight'", "432 bytes"});
  ExpectError(Import(TinyModel(), OnnxImportOptions{.limits = {.max_nodes = 2}}),
              absl::StatusCode::kResourceExhausted, {"4 nodes"});
  const std::string path = TempPath("limit.onnx");
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    const std::string bytes = TinyModel().SerializeAsString();
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  ExpectError(ImportOnnxFile(path, OnnxImportOptions{.limits = {.max_file_bytes = 10}}),
              absl::StatusCode::kResourceExhausted, {path, "limit of 10"});
  EXPECT_TRUE(ImportOnnxFile(path).ok());
  std::remove(path.c_str());
}

TEST(OnnxImportTest, ModelLevelProblemsAreNamed) {
  auto old = TinyModel();
  old.mutable_opset_import(0)->set_version(9);
  ExpectError(Import(old), absl::StatusCode::kInvalidArgument, {"opset 9"});

  auto external = TinyModel();
  external.mutable_graph()->mutable_initializer(0)->set_data_location(onnx::TensorProto::EXTERNAL);
  ExpectError(Import(external), absl::StatusCode::kUnimplemented, {"'conv.weight'", "external"});

  auto two_outputs = TinyModel();
  SetShape(two_outputs.mutable_graph()->add_output(), "gap", {-1, 4, 1, 1});
  ExpectError(Import(two_outputs), absl::StatusCode::kInvalidArgument, {"2 outputs"});

  auto domain = TinyModel([](onnx::GraphProto* g) {
    AddNode(g, "FusedConv", {"conv"}, "f")->set_domain("com.microsoft");
    return std::string("f");
  });
  ExpectError(Import(domain), absl::StatusCode::kUnimplemented, {"com.microsoft"});

  auto nhwc_conv = TinyModel([](onnx::GraphProto* g) {
    SetInts(AddNode(g, "Transpose", {"conv"}, "t"), "perm", {0, 2, 3, 1});
    *g->add_initializer() = FloatTensor("c2.weight", {4, 8, 1, 1}, 0.5f, 9);
    AddNode(g, "Conv", {"t", "c2.weight"}, "c2");
    return std::string("c2");
  });
  ExpectError(Import(nhwc_conv), absl::StatusCode::kUnimplemented, {"NCHW"});

  auto rgbd = TinyModel();
  rgbd.mutable_graph()
      ->mutable_input(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->mutable_dim(1)
      ->set_dim_param("c");
  ExpectError(Import(rgbd), absl::StatusCode::kInvalidArgument, {"channel count"});
}

TEST(OnnxUtilTest, Sha256MatchesTheStandardVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace visionserve::models
