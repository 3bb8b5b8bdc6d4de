#pragma once

// Aggregation of one load step's call outcomes: latency histograms, status codes, goodput, the
// server-side breakdown the responses carry, and per-interval timelines (variant mix over time).
// Knows nothing of gRPC: the driver turns each finished call into an Outcome.
//
// Two populations, on purpose:
//  - The *measured requests* are those whose intended send time falls in the measurement window.
//    Every one of them is waited for (or cancelled at the hard cap), so latency percentiles and
//    code counts cover all of them, including the slow tail that outlives the window.
//  - Throughput and goodput count responses *received* during the window, divided by its length:
//    in steady state that equals the sending rate, under overload it is what the server
//    sustains, and a closed loop's drain tail does not dilute it.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "loadtest/histogram.h"

namespace visionserve::loadtest {

using Clock = std::chrono::steady_clock;

// Request-level timing a response reports, microseconds.
struct ServerTiming {
  int64_t preprocess_us = 0, queue_us = 0, compute_us = 0, total_us = 0;
  absl::InlinedVector<int32_t, 4> batch_sizes;  // per image: the batch it ran in
};

// One finished call, as the driver saw it.
struct Outcome {
  absl::StatusCode code = absl::StatusCode::kOk;
  absl::string_view message;               // the error message when not OK
  Clock::time_point intended, sent, done;  // closed loop: intended == sent
  bool measured = false;                   // intended in the measurement window
  int images = 1;
  absl::string_view variant;  // OK: the variant that served it
  ServerTiming server;        // OK only
};

struct LatencySummary {
  int64_t count = 0;
  double mean_us = 0;
  int64_t min_us = 0, p50_us = 0, p90_us = 0, p95_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  static LatencySummary Of(const Histogram& h);
};

// Completions during one interval of the step (every request, warm-up included).
struct TimelinePoint {
  double start_s = 0, end_s = 0;  // from the step's start
  int64_t ok = 0, errors = 0;
  int64_t p50_us = 0, p99_us = 0;  // latency of the calls that completed in the interval
  std::map<std::string, int64_t, std::less<>> variants;
};

struct StepSummary {
  // The load (filled by the driver).
  std::string label;  // "c=8", "200/s poisson"
  bool open_loop = false;
  int concurrency = 0;
  double offered_rate = 0;
  std::string arrivals;
  // Times in seconds from the step's start.
  double measure_start_s = 0, measure_end_s = 0, end_s = 0;
  double start_offset_s = 0;  // from the run's start (set by the runner)
  std::string end_reason;     // duration, requests, hard cap, interrupted
  bool drain_timed_out = false;
  int64_t budget_us = 0;  // goodput bound; 0: every OK counts

  // Measured requests.
  int64_t sent = 0, completed = 0, ok = 0, ok_within_budget = 0, images_ok = 0;
  std::map<std::string, int64_t> codes;          // code name -> calls, "OK" included
  std::map<std::string, int64_t> error_samples;  // "CODE: message" -> calls, first few kinds
  Histogram latency;                             // OK calls, from the intended send time
  Histogram latency_all;                         // every completed call, errors included
  // Server side, OK calls.
  Histogram server_total, queue, compute, preprocess;
  std::map<int, int64_t> batch_sizes;  // batch size -> images that ran in such a batch
  std::map<std::string, int64_t> variants;

  // Received during the measurement window, per second of it.
  double window_s = 0;
  double throughput_rps = 0, goodput_rps = 0, images_per_s = 0, errors_per_s = 0;

  std::vector<TimelinePoint> timeline;

  // The generator itself.
  Histogram send_lag;         // actual send - intended, open loop (how late the generator was)
  int64_t calls_started = 0;  // warm-up and measured
  int64_t max_outstanding = 0;
  double cpu_s = 0;  // process CPU (user + system) during the measurement window
  double cpu_us_per_request = 0;
  double cpu_cores = 0;  // cpu_s / window_s

  // The server's counters over the step (differenced Prometheus series), when scraped.
  std::map<std::string, double> server_metrics;
  std::string server_metrics_error;

  double mean_batch() const;
  double error_fraction() const {
    return completed ? 1.0 - static_cast<double>(ok) / completed : 0;
  }
};

// Thread-safe collector for one step. Record() is called from transport threads.
class StepCollector {
 public:
  struct Options {
    Clock::time_point start;                             // the step's start
    Clock::duration interval = std::chrono::seconds(1);  // timeline resolution
    int64_t budget_us = 0;  // goodput: OK within this latency; 0: any OK
  };
  explicit StepCollector(const Options& options);

  void Record(const Outcome& outcome);

  struct Live {
    int64_t completed = 0, ok = 0, errors = 0;
    // The last finished timeline interval (all zero before the first one ends).
    TimelinePoint last;
  };
  Live Snapshot(Clock::time_point now) const;

  // Fills `out`'s measured-request and timeline fields; throughput over [window_start,
  // window_end). Leaves the load and generator fields alone.
  void Finish(Clock::time_point window_start, Clock::time_point window_end, StepSummary* out) const;

 private:
  // Per-bucket receive counts for the throughput window: 10 ms resolution.
  static constexpr int64_t kEventBucketUs = 10'000;
  struct Interval {
    int64_t ok = 0, errors = 0;
    Histogram latency{4};  // 3% resolution is plenty for a progress line and a plot
    std::map<std::string, int64_t, std::less<>> variants;
  };
  TimelinePoint ToPoint(size_t index, const Interval& in) const;

  const Options o_;
  mutable absl::Mutex mu_;
  StepSummary measured_ ABSL_GUARDED_BY(mu_);
  std::vector<Interval> intervals_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> ok_events_ ABSL_GUARDED_BY(mu_), good_events_ ABSL_GUARDED_BY(mu_),
      image_events_ ABSL_GUARDED_BY(mu_), error_events_ ABSL_GUARDED_BY(mu_);
  int64_t completed_ ABSL_GUARDED_BY(mu_) = 0, ok_ ABSL_GUARDED_BY(mu_) = 0;
};

// "OK", "DEADLINE_EXCEEDED", ... (gRPC and absl codes share numbers).
std::string CodeName(absl::StatusCode code);

}  // namespace visionserve::loadtest
