#include "engine/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/str_format.h"

namespace visionserve::engine {

std::string Dims::ToString() const { return absl::StrFormat("%dx%dx%d", h, w, c); }

void AlignedDeleter::operator()(void* p) const { std::free(p); }

void* AlignedAlloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  void* p = std::aligned_alloc(kTensorAlignment, rounded);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

Tensor::Tensor(int64_t n, Dims dims) : n_(n), dims_(dims) {
  data_ = MakeAligned<float>(static_cast<size_t>(size()));
  if (size() > 0) std::memset(data_.get(), 0, static_cast<size_t>(size()) * sizeof(float));
}

}  // namespace visionserve::engine
