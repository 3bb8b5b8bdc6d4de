// Detection postprocessing on a YOLOv8 640x640 output ([84, 8400]: 80 classes, anchors at
// strides 8/16/32), per ISA (arg 0 portable, 1 avx2, 2 avx512):
//   BM_DecodeThreshold   decode + score threshold 0.25 (the class argmax over 8400 x 80)
//   BM_NmsAfterDecode    class-aware NMS (IoU 0.7, max 300) on what that decode keeps
//   BM_NmsAllCandidates  NMS with every one of the 8400 anchors as a candidate (threshold 0)
//   BM_DecodeAndNms      both, as the Detect RPC runs them
//   BM_Letterbox         1920x1080 RGB8 -> 640x640 normalized float
// The synthetic output has 12 objects (30-280 px). Anchors whose centre falls in an object
// predict a jittered copy of its box, scored for its class by how close to the object's centre
// they are and how well their stride suits its size (a peak of 0.6-0.95 that falls off like a
// Gaussian), so the ~20 candidates per object overlap heavily; every other score is background
// (0.0005-0.02).
//   build/release/bench/nms_bench
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "server/detect/decode.h"
#include "server/detect/letterbox.h"
#include "server/detect/nms.h"

namespace visionserve::detect {
namespace {

constexpr int kClasses = 80;
constexpr int kAnchors = 8400;

std::vector<float> SyntheticYoloOutput() {
  std::vector<float> out((4 + kClasses) * kAnchors);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(0, 1);
  struct Object {
    float x1, y1, x2, y2;
    int cls;
    float peak;
  };
  std::vector<Object> objects;
  for (int i = 0; i < 12; ++i) {
    const float w = 30 + u(rng) * 250, h = 30 + u(rng) * 250;
    const float x = u(rng) * (640 - w), y = u(rng) * (640 - h);
    objects.push_back(
        {x, y, x + w, y + h, static_cast<int>(rng() % kClasses), 0.6f + 0.35f * u(rng)});
  }
  int a = 0;
  for (int stride : {8, 16, 32}) {
    const int g = 640 / stride;
    for (int gy = 0; gy < g; ++gy) {
      for (int gx = 0; gx < g; ++gx, ++a) {
        const float cx = (gx + 0.5f) * stride, cy = (gy + 0.5f) * stride;
        float bx = cx, by = cy, bw = stride * 2.0f, bh = stride * 2.0f;
        for (int c = 0; c < kClasses; ++c) out[(4 + c) * kAnchors + a] = 0.0005f + 0.02f * u(rng);
        for (const Object& o : objects) {
          if (cx < o.x1 || cx > o.x2 || cy < o.y1 || cy > o.y2) continue;
          const float w = o.x2 - o.x1, h = o.y2 - o.y1;
          bx = (o.x1 + o.x2) / 2 + (u(rng) - 0.5f) * 0.1f * w;
          by = (o.y1 + o.y2) / 2 + (u(rng) - 0.5f) * 0.1f * h;
          bw = w * (0.9f + 0.2f * u(rng));
          bh = h * (0.9f + 0.2f * u(rng));
          const float dx = (cx - (o.x1 + o.x2) / 2) / w, dy = (cy - (o.y1 + o.y2) / 2) / h;
          const float cells = std::max(w, h) / stride;
          const float fit = cells >= 4 && cells <= 20 ? 1.0f : 0.4f;
          float& score = out[(4 + o.cls) * kAnchors + a];
          score = std::max(score, o.peak * fit * std::exp(-40 * (dx * dx + dy * dy)));
          break;
        }
        out[a] = bx;
        out[kAnchors + a] = by;
        out[2 * kAnchors + a] = bw;
        out[3 * kAnchors + a] = bh;
      }
    }
  }
  return out;
}

const std::vector<float>& Output() {
  static const std::vector<float> out = SyntheticYoloOutput();
  return out;
}

bool SetUp(benchmark::State& state, Isa* isa) {
  *isa = static_cast<Isa>(state.range(0));
  if (ClampIsa(*isa) != *isa) {
    state.SkipWithError("ISA not supported by this CPU");
    return false;
  }
  state.SetLabel(std::string(IsaName(*isa)));
  return true;
}

const YoloOutputView kView{Output(), kClasses, kAnchors};

void BM_DecodeThreshold(benchmark::State& state) {
  Isa isa;
  if (!SetUp(state, &isa)) return;
  DecodeScratch scratch(isa);
  Candidates c;
  for (auto _ : state) {
    if (!DecodeYoloOutput(kView, {.score_threshold = 0.25f}, &scratch, &c).ok()) {
      state.SkipWithError("decode failed");
    }
    benchmark::DoNotOptimize(c.scores.data());
  }
  state.counters["candidates"] = static_cast<double>(c.size());
}

void RunNms(benchmark::State& state, float score_threshold) {
  Isa isa;
  if (!SetUp(state, &isa)) return;
  DecodeScratch dscratch(isa);
  Candidates c;
  if (!DecodeYoloOutput(kView, {.score_threshold = score_threshold}, &dscratch, &c).ok()) {
    state.SkipWithError("decode failed");
    return;
  }
  NmsScratch scratch(isa);
  std::vector<int32_t> keep;
  const NmsInput in{c.boxes, c.scores, c.class_ids};
  for (auto _ : state) {
    if (!BatchedNms(in, {0.7f, 300}, &scratch, &keep).ok()) state.SkipWithError("nms failed");
    benchmark::DoNotOptimize(keep.data());
  }
  state.counters["candidates"] = static_cast<double>(c.size());
  state.counters["kept"] = static_cast<double>(keep.size());
}

void BM_NmsAfterDecode(benchmark::State& state) { RunNms(state, 0.25f); }
void BM_NmsAllCandidates(benchmark::State& state) { RunNms(state, 0.0f); }

void BM_DecodeAndNms(benchmark::State& state) {
  Isa isa;
  if (!SetUp(state, &isa)) return;
  DecodeScratch dscratch(isa);
  NmsScratch scratch(isa);
  Candidates c;
  std::vector<int32_t> keep;
  for (auto _ : state) {
    if (!DecodeYoloOutput(kView, {.score_threshold = 0.25f}, &dscratch, &c).ok() ||
        !BatchedNms({c.boxes, c.scores, c.class_ids}, {0.7f, 300}, &scratch, &keep).ok()) {
      state.SkipWithError("failed");
    }
    benchmark::DoNotOptimize(keep.data());
  }
  state.counters["kept"] = static_cast<double>(keep.size());
}

void BM_Letterbox(benchmark::State& state) {
  std::vector<uint8_t> img(1920 * 1080 * 3);
  std::mt19937 rng(1);
  for (auto& v : img) v = static_cast<uint8_t>(rng());
  auto g = ComputeLetterbox(1920, 1080, 640, 640);
  std::vector<float> out(640 * 640 * 3);
  LetterboxScratch scratch;
  for (auto _ : state) {
    if (!LetterboxImage(img, *g, {}, &scratch, out).ok()) state.SkipWithError("failed");
    benchmark::DoNotOptimize(out.data());
  }
}

BENCHMARK(BM_DecodeThreshold)->ArgName("isa")->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_NmsAfterDecode)->ArgName("isa")->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_NmsAllCandidates)->ArgName("isa")->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DecodeAndNms)->ArgName("isa")->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Letterbox)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace visionserve::detect
