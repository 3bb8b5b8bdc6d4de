#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace visionserve::engine {

inline constexpr size_t kTensorAlignment = 64;
inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// Batch-free shape of an activation: every value in the engine is NHWC with a batch dimension
// that is only fixed when a plan is made. Vectors (logits, pooled features) are 1×1×C.
struct Dims {
  int64_t h = 1;
  int64_t w = 1;
  int64_t c = 1;
  int64_t elements() const { return h * w * c; }
  bool operator==(const Dims&) const = default;
  std::string ToString() const;
};

// Frees memory from AlignedAlloc.
struct AlignedDeleter {
  void operator()(void* p) const;
};

// 64-byte aligned (from 2 MiB on: 2 MiB aligned, whole 2 MiB chunks marked for transparent huge
// pages), uninitialised; returns nullptr only for bytes == 0.
void* AlignedAlloc(size_t bytes);

template <typename T>
using AlignedPtr = std::unique_ptr<T[], AlignedDeleter>;

template <typename T>
AlignedPtr<T> MakeAligned(size_t count) {
  return AlignedPtr<T>(static_cast<T*>(AlignedAlloc(count * sizeof(T))));
}

// A dense f32 NHWC tensor that owns 64-byte aligned memory.
class Tensor {
 public:
  Tensor() = default;
  Tensor(int64_t n, Dims dims);  // zero-initialised

  int64_t n() const { return n_; }
  const Dims& dims() const { return dims_; }
  int64_t size() const { return n_ * dims_.elements(); }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  std::span<float> span() { return {data_.get(), static_cast<size_t>(size())}; }
  std::span<const float> span() const { return {data_.get(), static_cast<size_t>(size())}; }
  float* image(int64_t i) { return data_.get() + i * dims_.elements(); }
  const float* image(int64_t i) const { return data_.get() + i * dims_.elements(); }

 private:
  int64_t n_ = 0;
  Dims dims_;
  AlignedPtr<float> data_;
};

}  // namespace visionserve::engine
