// nms_tool: class-aware NMS (server/detect/nms.h) over cases read from a binary file, for the
// torchvision parity test (tests/detect/nms_parity_test.py).
//
//   nms_tool --input CASES.bin --output KEEP.bin [--isa portable|avx2|avx512]
//
// All little-endian. Input: "NMS1", int32 case count, then per case: int32 n,
// float32 iou_threshold, int32 max_detections, float32 boxes[n][4] (x1, y1, x2, y2),
// float32 scores[n], int32 class_ids[n].
// Output, per case: int32 status code (absl::StatusCode, 0 = OK), int32 k, int32 kept[k]
// (indices into the case's boxes, in output order; k = 0 on error). Errors also go to stderr.

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "server/detect/isa.h"
#include "server/detect/nms.h"

ABSL_FLAG(std::string, input, "", "cases file");
ABSL_FLAG(std::string, output, "", "kept indices file");
ABSL_FLAG(std::string, isa, "", "portable, avx2 or avx512 (default: the best this CPU has)");

namespace {

namespace detect = visionserve::detect;

class Reader {
 public:
  explicit Reader(std::vector<char> bytes) : bytes_(std::move(bytes)) {}
  template <typename T>
  bool Read(T* out, size_t count = 1) {
    const size_t size = sizeof(T) * count;
    if (size == 0) return true;  // (an empty vector's data() may be null)
    if (bytes_.size() - pos_ < size) return false;
    std::memcpy(out, bytes_.data() + pos_, size);
    pos_ += size;
    return true;
  }
  bool AtEnd() const { return pos_ == bytes_.size(); }

 private:
  std::vector<char> bytes_;
  size_t pos_ = 0;
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "nms_tool: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  detect::Isa isa = detect::DefaultIsa();
  if (const std::string name = absl::GetFlag(FLAGS_isa); !name.empty()) {
    if (name == "portable") {
      isa = detect::Isa::kPortable;
    } else if (name == "avx2") {
      isa = detect::Isa::kAvx2;
    } else if (name == "avx512") {
      isa = detect::Isa::kAvx512;
    } else {
      return Fail(absl::StrCat("unknown --isa ", name));
    }
    if (detect::ClampIsa(isa) != isa) return Fail(absl::StrCat("this CPU has no ", name));
  }
  std::ifstream in(absl::GetFlag(FLAGS_input), std::ios::binary);
  if (!in) return Fail("cannot read --input");
  Reader r(std::vector<char>(std::istreambuf_iterator<char>(in), {}));
  char magic[4];
  int32_t cases = 0;
  if (!r.Read(magic, 4) || std::memcmp(magic, "NMS1", 4) != 0 || !r.Read(&cases)) {
    return Fail("not an NMS1 file");
  }
  detect::NmsScratch scratch(isa);
  std::vector<float> boxes, scores;
  std::vector<int32_t> classes, keep, out;
  for (int32_t k = 0; k < cases; ++k) {
    int32_t n = 0, max_det = 0;
    float iou = 0;
    if (!r.Read(&n) || n < 0 || !r.Read(&iou) || !r.Read(&max_det)) return Fail("truncated");
    boxes.resize(4 * static_cast<size_t>(n));
    scores.resize(n);
    classes.resize(n);
    if (!r.Read(boxes.data(), boxes.size()) || !r.Read(scores.data(), scores.size()) ||
        !r.Read(classes.data(), classes.size())) {
      return Fail("truncated");
    }
    const absl::Status st =
        detect::BatchedNms({boxes, scores, classes}, {iou, max_det}, &scratch, &keep);
    if (!st.ok()) {
      std::fprintf(stderr, "nms_tool: case %d: %s\n", k, st.ToString().c_str());
      keep.clear();
    }
    out.push_back(static_cast<int32_t>(st.code()));
    out.push_back(static_cast<int32_t>(keep.size()));
    out.insert(out.end(), keep.begin(), keep.end());
  }
  if (!r.AtEnd()) return Fail("trailing bytes after the last case");
  std::ofstream o(absl::GetFlag(FLAGS_output), std::ios::binary);
  o.write(reinterpret_cast<const char*>(out.data()),
          static_cast<std::streamsize>(out.size() * sizeof(int32_t)));
  if (!o) return Fail("cannot write --output");
  return 0;
}
