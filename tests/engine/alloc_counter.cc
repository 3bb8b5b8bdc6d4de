// Replaces every global operator new/delete of the test binary with a counting malloc/free
// pair. Kept in its own translation unit: when GCC sees the replacements inline next to a
// `new` it warns about the malloc/free pairing (-Wmismatched-new-delete).
#include "tests/engine/alloc_counter.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

// Counts heap allocations made through operator new anywhere in the process, to prove that a
// warmed-up Run() allocates nothing.
namespace {
std::atomic<int64_t> g_news{0};
}  // namespace

int64_t HeapAllocations() { return g_news.load(std::memory_order_relaxed); }

void* operator new(size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// Every form is replaced, so no allocation pairs our malloc with the runtime's delete (or
// the reverse); std::stable_sort's temporary buffer uses the nothrow form, for instance.
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  g_news.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  g_news.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
static void* AlignedNew(size_t n, std::align_val_t al) noexcept {
  g_news.fetch_add(1, std::memory_order_relaxed);
  const size_t a = std::max(static_cast<size_t>(al), sizeof(void*));
  return std::aligned_alloc(a, (std::max<size_t>(n, 1) + a - 1) / a * a);
}
void* operator new(size_t n, std::align_val_t al) {
  if (void* p = AlignedNew(n, al)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t al) {
  if (void* p = AlignedNew(n, al)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return AlignedNew(n, al);
}
void* operator new[](size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return AlignedNew(n, al);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
