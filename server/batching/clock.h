#pragma once

// Time source of the batcher and the policy router: microseconds on a monotonic clock. Tests
// inject a FakeClock and drive time by hand; nothing in batching/ or policy/ sleeps.

#include <atomic>
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

// A clock that only moves when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_us = 1'000'000) : now_(start_us) {}
  int64_t NowMicros() const override { return now_.load(); }
  void Advance(int64_t us) { now_.fetch_add(us); }
  void Set(int64_t us) { now_.store(us); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace visionserve::batching
