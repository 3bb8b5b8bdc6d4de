#pragma once

// What load to offer and when: open-loop arrival processes, sweep lists, and the search for the
// highest rate that meets a latency objective. Pure logic (no clocks, no I/O): the driver asks
// for intended send times, the runner asks for the next rate to try.

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace visionserve::loadtest {

enum class Arrivals { kConstant, kPoisson };
const char* ArrivalsName(Arrivals a);
absl::StatusOr<Arrivals> ParseArrivals(absl::string_view name);  // "constant" or "poisson"

// Intended send times of an open-loop run as offsets from its start; non-decreasing and
// deterministic for a seed. Constant: request i at i / rate (no drift from summing gaps).
// Poisson: exponential gaps with mean 1 / rate.
class ArrivalProcess {
 public:
  // rate_per_s > 0.
  ArrivalProcess(Arrivals kind, double rate_per_s, uint64_t seed);
  std::chrono::nanoseconds Next();

 private:
  Arrivals kind_;
  double rate_;
  int64_t index_ = 0;
  double poisson_s_ = 0;
  std::mt19937_64 rng_;
  std::exponential_distribution<double> gap_;
};

// A list of load levels: "8", "1,2,4,8", "1..64" (doubling from 1, ending at 64), "10..50:10"
// (step 10), or a comma-separated mix of those ("1..8,12,16"). Values must be positive; with
// `integers` (concurrency) they must be whole numbers. The result keeps the given order.
absl::StatusOr<std::vector<double>> ParseSweep(absl::string_view spec, bool integers);

// "Find the highest rate whose runs pass" (pass = p99 under the objective, few errors; decided by
// the caller). Doubles from `start_rate` until a rate fails (or `max_rate` passes), halves down
// to `min_rate` if the first fails, then bisects between the highest pass and the lowest failure
// until they are within `precision` (relative) or `max_steps` runs were made.
struct RateSearchOptions {
  double min_rate = 1;      // requests/s; never tries below
  double max_rate = 10000;  // never tries above
  double start_rate = 0;    // 0: min_rate
  double precision = 0.05;  // stop when (fail - pass) / pass <= precision
  int max_steps = 12;       // runs, including the bracketing ones
};

class RateSearch {
 public:
  explicit RateSearch(const RateSearchOptions& options);
  // The next rate to run, or nullopt when the search is over.
  std::optional<double> NextRate() const;
  // The verdict of a run at `rate` (normally the one NextRate returned).
  void Report(double rate, bool passed);

  double best_passing_rate() const { return pass_; }    // 0: none passed
  double lowest_failing_rate() const { return fail_; }  // infinity: none failed
  int steps() const { return steps_; }
  // True when the answer is bracketed within `precision`, or max_rate passed, or min_rate failed.
  bool converged() const;

 private:
  RateSearchOptions o_;
  double pass_ = 0;
  double fail_ = std::numeric_limits<double>::infinity();
  int steps_ = 0;
};

}  // namespace visionserve::loadtest
