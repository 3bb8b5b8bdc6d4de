#include "engine/tensor.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/str_format.h"

namespace visionserve::engine {

std::string Dims::ToString() const { return absl::StrFormat("%dx%dx%d", h, w, c); }

void AlignedDeleter::operator()(void* p) const { std::free(p); }

void* AlignedAlloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  // Blocks of 2 MiB and more (packed weights, large tensors) are 2 MiB aligned and asked to
  // be backed by transparent huge pages: the GEMM streams several MiB of packed weights per
  // K block, and on a VM every 4 KiB TLB miss is a two-level page walk (the 1024³ GEMM
  // gained 1–3 % from this).
  const size_t alignment = bytes >= kHugePageBytes ? kHugePageBytes : kTensorAlignment;
  const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded);
  if (p == nullptr) throw std::bad_alloc();
  if (alignment == kHugePageBytes) madvise(p, rounded, MADV_HUGEPAGE);  // a hint: may fail
  return p;
}

Tensor::Tensor(int64_t n, Dims dims) : n_(n), dims_(dims) {
  data_ = MakeAligned<float>(static_cast<size_t>(size()));
  if (size() > 0) std::memset(data_.get(), 0, static_cast<size_t>(size()) * sizeof(float));
}

}  // namespace visionserve::engine
