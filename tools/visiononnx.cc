// visiononnx: ONNX import/export from the command line.
//
//   visiononnx inspect FILE.onnx                      what the importer makes of a file
//   visiononnx export MODEL OUT.onnx [--opset 17] [--seed S] [--input_size N] [--weights F.onnx]
//   visiononnx run (FILE.onnx | --model MODEL [--weights F.onnx] [--seed S])
//                  --input IN.f32 --batch N --output OUT.f32
//
// `run` reads N images as raw little-endian float32 in NCHW order (as torch tensors are laid
// out, already normalised) and writes N × classes float32 logits: the parity tests compare them
// with PyTorch's.

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/executor.h"
#include "engine/passes.h"
#include "models/onnx.h"
#include "models/zoo.h"

ABSL_FLAG(std::string, model, "", "zoo model name (instead of an ONNX file)");
ABSL_FLAG(std::string, weights, "", "ONNX export whose weights the zoo model loads");
ABSL_FLAG(uint64_t, seed, 0, "synthetic weights' seed for zoo models");
ABSL_FLAG(int, input_size, 0, "input resolution (zoo: catalog default; ONNX: for symbolic H/W)");
ABSL_FLAG(int64_t, opset, 17, "export opset (13-17)");
ABSL_FLAG(std::string, input, "", "raw float32 NCHW input file");
ABSL_FLAG(std::string, output, "", "raw float32 output file");
ABSL_FLAG(int64_t, batch, 1, "images in --input");
ABSL_FLAG(int, threads, 0, "worker threads (0: the CPU allowance)");

namespace {

namespace engine = visionserve::engine;
namespace models = visionserve::models;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "visiononnx: %s\n", s.ToString().c_str());
  return 1;
}

// The graph named by a file argument or --model/--weights.
absl::StatusOr<engine::Graph> LoadGraph(const std::vector<char*>& args, size_t file_arg,
                                        std::string* label) {
  models::BuildOptions bo;
  bo.input_size = absl::GetFlag(FLAGS_input_size);
  bo.seed = absl::GetFlag(FLAGS_seed);
  const std::string model = absl::GetFlag(FLAGS_model);
  const std::string weights = absl::GetFlag(FLAGS_weights);
  if (model.empty()) {
    if (args.size() <= file_arg) return absl::InvalidArgumentError("give an ONNX file or --model");
    models::OnnxImportOptions io;
    io.input_size = bo.input_size;
    absl::StatusOr<models::ImportedOnnx> m = models::ImportOnnxFile(args[file_arg], io);
    if (!m.ok()) return m.status();
    const models::OnnxModelInfo& i = m->info;
    *label = absl::StrCat(args[file_arg], ": opset ", i.opset, ", ", i.onnx_nodes,
                          " ONNX nodes, input '", i.input_name, "' ", i.channels, "×", i.height,
                          "×", i.width, ", ", i.num_classes, " classes, producer '", i.producer,
                          "', sha256 ", i.sha256);
    return std::move(m->graph);
  }
  if (!weights.empty()) {
    models::OnnxModelInfo info;
    absl::StatusOr<engine::Graph> g =
        models::BuildModelWithOnnxWeights(model, weights, bo, {}, &info);
    *label = absl::StrCat(model, " with weights ", weights, " (sha256 ", info.sha256, ")");
    return g;
  }
  *label = absl::StrCat(model, " with synthetic weights (seed ", bo.seed, ")");
  return models::BuildModel(model, bo);
}

int Inspect(const std::vector<char*>& args) {
  std::string label;
  absl::StatusOr<engine::Graph> g = LoadGraph(args, 2, &label);
  if (!g.ok()) return Fail(g.status());
  std::printf("%s\n", label.c_str());
  std::printf("params %lld, MACs %lld\n", static_cast<long long>(g->ParameterCount()),
              static_cast<long long>(g->Macs()));
  engine::PassStats stats;
  if (absl::Status s = engine::OptimizeGraph(*g, &stats); !s.ok()) return Fail(s);
  std::map<std::string, int> ops;
  for (const engine::Node& n : g->nodes()) ++ops[std::string(engine::OpTypeName(n.type))];
  std::printf("fused ops:");
  for (const auto& [op, count] : ops) std::printf(" %s×%d", op.c_str(), count);
  std::printf(
      "\nfolded: %d batch-norms, %d layer-scales; fused: %d residuals, %d activations, %d "
      "squeeze-excites, %d layer-norms; %d channel slices merged into concats\n",
      stats.batchnorms_folded, stats.layer_scales_folded, stats.residuals_fused,
      stats.activations_fused, stats.squeeze_excites_fused, stats.layernorms_fused,
      stats.slices_merged);
  return 0;
}

int Export(const std::vector<char*>& args) {
  if (args.size() < 4) return Fail(absl::InvalidArgumentError("usage: export MODEL OUT.onnx"));
  absl::SetFlag(&FLAGS_model, args[2]);
  std::string label;
  absl::StatusOr<engine::Graph> g = LoadGraph(args, 99, &label);
  if (!g.ok()) return Fail(g.status());
  models::OnnxExportOptions eo;
  eo.opset = absl::GetFlag(FLAGS_opset);
  eo.model_name = args[2];
  if (absl::Status s = models::ExportOnnxFile(*g, args[3], eo); !s.ok()) return Fail(s);
  std::printf("wrote %s: %s, opset %lld\n", args[3], label.c_str(),
              static_cast<long long>(eo.opset));
  return 0;
}

int Run(const std::vector<char*>& args) {
  std::string label;
  absl::StatusOr<engine::Graph> g = LoadGraph(args, 2, &label);
  if (!g.ok()) return Fail(g.status());
  const engine::Dims in = g->value(g->inputs()[0]).dims;
  const engine::Dims out = g->value(g->outputs()[0]).dims;
  const int64_t batch = absl::GetFlag(FLAGS_batch);
  if (batch < 1) return Fail(absl::InvalidArgumentError("--batch must be at least 1"));
  std::ifstream f(absl::GetFlag(FLAGS_input), std::ios::binary);
  std::vector<float> nchw(batch * in.elements());
  if (!f || !f.read(reinterpret_cast<char*>(nchw.data()), nchw.size() * sizeof(float))) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("cannot read ", nchw.size(), " floats from --input")));
  }
  std::vector<float> nhwc(nchw.size());
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t c = 0; c < in.c; ++c) {
      for (int64_t p = 0; p < in.h * in.w; ++p) {
        nhwc[(n * in.h * in.w + p) * in.c + c] = nchw[(n * in.c + c) * in.h * in.w + p];
      }
    }
  }
  engine::CompileOptions co;
  co.num_threads = absl::GetFlag(FLAGS_threads);
  co.batch_sizes = {batch};
  co.max_batch_size = batch;
  absl::StatusOr<std::unique_ptr<engine::CompiledModel>> m =
      engine::CompiledModel::Create(*std::move(g), co);
  if (!m.ok()) return Fail(m.status());
  std::vector<float> logits(batch * out.elements());
  if (absl::Status s = (*m)->Run(batch, nhwc, logits); !s.ok()) return Fail(s);
  std::ofstream o(absl::GetFlag(FLAGS_output), std::ios::binary | std::ios::trunc);
  if (!o || !o.write(reinterpret_cast<const char*>(logits.data()), logits.size() * sizeof(float))) {
    return Fail(absl::PermissionDeniedError("cannot write --output"));
  }
  std::fprintf(stderr, "%s: %lld images → %s\n", label.c_str(), static_cast<long long>(batch),
               absl::GetFlag(FLAGS_output).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "visiononnx inspect FILE | export MODEL OUT.onnx | run (FILE | --model M) --input --batch "
      "--output");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string cmd = args.size() > 1 ? args[1] : "";
  if (cmd == "inspect") return Inspect(args);
  if (cmd == "export") return Export(args);
  if (cmd == "run") return Run(args);
  std::fprintf(stderr, "usage: visiononnx inspect FILE | export MODEL OUT.onnx | run ...\n");
  return 2;
}
