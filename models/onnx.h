#pragma once

// ONNX import and export for image classifiers.
//
// Import reads an ONNX model (opsets 11–18 of the default domain; torchvision's exports at
// opsets 13–17 import without edits) and builds an engine graph with the zoo's contract
// (models/zoo.h): input "input" {H, W, C} NHWC, output "logits" {1, 1, classes}, unfused ops.
// The importer tracks each tensor's layout instead of materialising Transposes: ConvNeXt's
// NCHW↔NHWC permutes cost nothing, and its MatMul linears become the same 1×1 convs the zoo
// uses. Decomposed subgraphs are recognised and mapped onto engine ops: Sigmoid·Mul → SiLU,
// HardSigmoid·Mul → hard-swish, Div/Erf/Add/Mul/Mul → GELU, ReduceMean/Sub/Pow/ReduceMean/
// Add/Sqrt/Div[/Mul/Add] → LayerNorm; constant Add/Sub after a Conv/MatMul/Gemm become its
// bias. The engine's passes (engine/passes.h) then fuse the graph exactly as they fuse a zoo
// model, so an imported torchvision model runs the same kernels as its zoo twin.
//
// Every failure is a Status naming the problem: a file that is not ONNX or is truncated, an
// unsupported op (with its type and node), unsupported attribute values, dynamic shapes that
// cannot be planned, missing or mistyped initializers, sizes beyond the limits.
//
// Export writes any zoo graph as an ONNX model (NCHW, opset 17, dynamic batch) that ONNX
// Runtime and others run, and that imports back into an identical graph.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/graph.h"
#include "models/zoo.h"

namespace visionserve::models {

struct OnnxLimits {
  int64_t max_file_bytes = int64_t{2} << 30;    // protobuf cannot parse more than 2 GiB
  int64_t max_tensor_bytes = int64_t{1} << 30;  // any one initializer or constant
  int64_t max_nodes = 100'000;
};

struct OnnxImportOptions {
  OnnxLimits limits;
  // Square input resolution for models exported with symbolic height/width; 0 requires the
  // file to fix them. Ignored (must match) when the file fixes them.
  int input_size = 0;
};

// What the importer learned about a file.
struct OnnxModelInfo {
  std::string sha256;  // hex digest of the file's bytes
  int64_t file_bytes = 0;
  int64_t opset = 0;
  int64_t ir_version = 0;
  std::string producer;  // producer_name and producer_version
  std::string input_name, output_name;
  int64_t height = 0, width = 0, channels = 0;
  int64_t num_classes = 0;
  int64_t onnx_nodes = 0;
  // Detectors (output "detections", YOLOv8's [N, 4 + classes, anchors]):
  bool detector = false;
  int64_t num_anchors = 0;
  int reg_max = 0;
  std::vector<int> strides;
};

struct ImportedOnnx {
  engine::Graph graph;  // unfused, with the zoo's contract; params filled from the file
  OnnxModelInfo info;
};

// Imports a serialized ModelProto.
absl::StatusOr<ImportedOnnx> ImportOnnx(std::string_view bytes, const OnnxImportOptions& opts = {});
// Reads and imports a file. NOT_FOUND when it does not exist.
absl::StatusOr<ImportedOnnx> ImportOnnxFile(const std::string& path,
                                            const OnnxImportOptions& opts = {});

// Builds the zoo model `name` and loads the weights of an ONNX export of the same architecture
// (e.g. torchvision's convnext_tiny exported with BatchNorm folded). Both graphs are fused by
// engine::OptimizeGraph and must then match node for node (op, attributes, parameter shapes);
// the result is the fused zoo graph holding the file's parameters. INVALID_ARGUMENT naming the
// first mismatch when the file is another architecture. `info` (optional) describes the file.
absl::StatusOr<engine::Graph> BuildModelWithOnnxWeights(std::string_view name,
                                                        const std::string& onnx_path,
                                                        const BuildOptions& build = {},
                                                        const OnnxImportOptions& opts = {},
                                                        OnnxModelInfo* info = nullptr);

struct OnnxExportOptions {
  int64_t opset = 17;  // 13–17; 17 writes LayerNormalization, older opsets its decomposition
  std::string model_name;
};

// Serializes `graph` (a zoo graph, fused or not) as an ONNX ModelProto: NCHW input "input"
// [batch, C, H, W] with a symbolic batch, output "logits" [batch, classes].
absl::StatusOr<std::string> ExportOnnx(const engine::Graph& graph,
                                       const OnnxExportOptions& opts = {});
absl::Status ExportOnnxFile(const engine::Graph& graph, const std::string& path,
                            const OnnxExportOptions& opts = {});

// Hex SHA-256 of `bytes`, and of a file's contents (NOT_FOUND when it cannot be opened).
std::string Sha256Hex(std::string_view bytes);
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

}  // namespace visionserve::models
