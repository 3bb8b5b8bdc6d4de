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
  // Blocks of 2 MiB and more (packed weights, large tensors) start on a 2 MiB boundary and
  // their whole 2 MiB chunks are asked to be backed by transparent huge pages: the GEMM streams
  // several MiB of packed weights per K block, and on a VM every 4 KiB TLB miss is a two-level
  // page walk (the 1024³ GEMM gained 2–4 % from this). The tail stays on small pages, so a
  // block costs no more memory than its size.
  const size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  const bool huge = bytes >= kHugePageBytes;
  void* p = nullptr;
  if (posix_memalign(&p, huge ? kHugePageBytes : kTensorAlignment, rounded) != 0) {
    throw std::bad_alloc();
  }
  if (huge) madvise(p, bytes / kHugePageBytes * kHugePageBytes, MADV_HUGEPAGE);  // a hint
  return p;
}

Tensor::Tensor(int64_t n, Dims dims) : n_(n), dims_(dims) {
  data_ = MakeAligned<float>(static_cast<size_t>(size()));
  if (size() > 0) std::memset(data_.get(), 0, static_cast<size_t>(size()) * sizeof(float));
}

}  // namespace visionserve::engine
