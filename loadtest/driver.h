#pragma once

// Runs one load step against a Transport: a closed loop at a concurrency or an open loop at a
// rate, with warm-up, a measurement window and a drain, and always ends by itself.
//
//  - Closed loop: `concurrency` callers, each sending its next call when the previous one
//    completes. Latency is measured from the actual send (service time at that concurrency).
//  - Open loop: a dispatcher sends at the ArrivalProcess's intended times, whether or not earlier
//    calls have returned. Latency is measured from the *intended* send time, so if the generator
//    falls behind (it is descheduled, or `max_outstanding` calls are already waiting) the delay
//    is charged to the calls it held up: no coordinated omission. The delay itself is reported
//    as send lag.
//
// The measured requests are those issued in [warm-up end, warm-up end + duration), at most
// `max_requests` of them. After issuing stops the step waits up to `drain_timeout` for them, then
// cancels what is left; `hard_cap` bounds the whole step (issuing and draining), whatever the
// server does.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "loadtest/schedule.h"
#include "loadtest/stats.h"
#include "loadtest/transport.h"
#include "loadtest/workload.h"

namespace visionserve::loadtest {

struct StepConfig {
  std::string label;  // for progress and reports; empty: generated
  bool open_loop = false;
  int concurrency = 1;  // closed loop, >= 1
  double rate = 0;      // open loop, requests/s, > 0
  Arrivals arrivals = Arrivals::kConstant;
  uint64_t seed = 1;  // Poisson gaps

  std::chrono::nanoseconds warmup{0};
  std::chrono::nanoseconds duration{0};  // 0: bounded by max_requests alone
  int64_t max_requests = 0;              // measured requests; 0: bounded by duration alone
  std::chrono::nanoseconds drain_timeout = std::chrono::seconds(10);
  std::chrono::nanoseconds hard_cap = std::chrono::minutes(10);  // the whole step

  std::chrono::nanoseconds deadline{0};  // per call, from its actual send; 0: none
  int64_t budget_us = 0;                 // goodput: OK within this latency; 0: any OK
  // Open loop: calls allowed in flight; beyond it sending waits (and the wait counts as latency).
  int64_t max_outstanding = 100000;
  std::chrono::nanoseconds interval = std::chrono::seconds(1);  // timeline resolution
  std::chrono::nanoseconds progress_every = std::chrono::seconds(1);

  uint64_t first_seq = 0;  // request numbering (mix choice, request_id) continues across steps
  std::string id_prefix = "vl-";
};

struct Progress {
  const StepConfig* step = nullptr;
  double elapsed_s = 0;
  const char* phase = "";  // "warm-up", "measure", "drain"
  int64_t sent = 0;        // calls started in this step, warm-up included
  int64_t outstanding = 0;
  StepCollector::Live live;
};
using ProgressFn = std::function<void(const Progress&)>;

// Blocks until the step is over. `interrupt` (may be null) ends issuing early, as the hard cap
// does. Errors only for an invalid config; server failures are results.
absl::StatusOr<StepSummary> RunStep(const StepConfig& config, Transport& transport,
                                    const Workload& workload, const ProgressFn& progress,
                                    const std::atomic<bool>* interrupt);

// User + system CPU seconds of this process so far.
double ProcessCpuSeconds();

}  // namespace visionserve::loadtest
