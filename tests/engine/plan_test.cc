#include "engine/plan.h"

#include <random>

#include "gtest/gtest.h"

namespace visionserve::engine {
namespace {

TEST(AssignOffsetsTest, LiveBuffersNeverOverlapAndDeadOnesShare) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 50; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 40);
    std::vector<int64_t> sizes(n);
    std::vector<std::pair<int32_t, int32_t>> life(n);
    for (int i = 0; i < n; ++i) {
      sizes[i] = 1 + static_cast<int64_t>(rng() % 5000);
      const int32_t a = static_cast<int32_t>(rng() % 60);
      life[i] = {a, a + static_cast<int32_t>(rng() % 8)};
    }
    int64_t total = 0;
    auto off = AssignOffsets(sizes, life, &total);
    int64_t sum = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(off[i] % 64, 0);
      EXPECT_LE(off[i] + sizes[i], total);
      sum += (sizes[i] + 63) / 64 * 64;
      for (int j = i + 1; j < n; ++j) {
        const bool live = life[i].first <= life[j].second && life[j].first <= life[i].second;
        const bool mem = off[i] < off[j] + sizes[j] && off[j] < off[i] + sizes[i];
        EXPECT_FALSE(live && mem) << "buffers " << i << " and " << j << " overlap";
      }
    }
    EXPECT_LE(total, sum);
  }
}

TEST(AssignOffsetsTest, ChainReusesTwoSlots) {
  // A chain a->b->c->d: each buffer lives two steps, so two slots suffice.
  std::vector<int64_t> sizes = {1024, 1024, 1024, 1024};
  std::vector<std::pair<int32_t, int32_t>> life = {{0, 1}, {1, 2}, {2, 3}, {3, 4}};
  int64_t total = 0;
  AssignOffsets(sizes, life, &total);
  EXPECT_EQ(total, 2048);
}

}  // namespace
}  // namespace visionserve::engine
