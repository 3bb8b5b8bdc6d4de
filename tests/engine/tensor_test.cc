#include "engine/tensor.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace visionserve::engine {
namespace {

// The VmFlags line of the mapping in /proc/self/smaps that holds `p` ("" if none does).
std::string VmFlagsOf(const void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> begin >> dash >> end && dash == '-' && line.find(':') > 8) {
      inside = begin <= address && address < end;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(AlignedAllocTest, SmallBlocksAreCacheLineAligned) {
  for (const size_t bytes : {size_t{1}, size_t{63}, size_t{4096}, (size_t{2} << 20) - 64}) {
    AlignedPtr<std::byte> p(static_cast<std::byte*>(AlignedAlloc(bytes)));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.get()) % kTensorAlignment, 0u) << bytes;
    std::memset(p.get(), 1, bytes);
  }
  EXPECT_EQ(AlignedAlloc(0), nullptr);
}

TEST(AlignedAllocTest, LargeBlocksAreHugePageAlignedAndMarkedForHugePages) {
  const size_t bytes = (size_t{3} << 20) + 100;  // one whole 2 MiB chunk and a tail
  AlignedPtr<std::byte> p(static_cast<std::byte*>(AlignedAlloc(bytes)));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p.get()) % kHugePageBytes, 0u);
  std::memset(p.get(), 1, bytes);
  // madvise(MADV_HUGEPAGE) shows as the "hg" flag of the mapping, whatever the system's THP
  // setting makes of it.
  const std::string flags = VmFlagsOf(p.get() + kHugePageBytes - 1);
  ASSERT_FALSE(flags.empty());
  EXPECT_NE(flags.find(" hg"), std::string::npos) << flags;
}

}  // namespace
}  // namespace visionserve::engine
