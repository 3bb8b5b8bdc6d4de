#pragma once

// Time source of the batcher and the policy router: microseconds on a monotonic clock. The
// decision logic (BatchQueue::Poll, policy::Choose) takes the time as an argument, so its tests
// drive time by hand; DynamicBatcher takes a Clock.

#include <chrono>
#include <cstdint>
#include <limits>

namespace visionserve::batching {

inline constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMicros() const = 0;
};

// std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  static SteadyClock* Get() {
    static SteadyClock clock;
    return &clock;
  }
};

}  // namespace visionserve::batching
