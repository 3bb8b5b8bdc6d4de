#pragma once

// A run: the steps of a sweep, or a search for the highest rate that meets a p99 objective,
// one after the other (each step drains before the next begins), within a hard cap for the
// whole run.

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "loadtest/driver.h"
#include "loadtest/schedule.h"
#include "loadtest/stats.h"

namespace visionserve::loadtest {

enum class Mode { kClosed, kOpen, kSearch };
const char* ModeName(Mode m);

struct RunPlan {
  Mode mode = Mode::kClosed;
  std::vector<int> concurrency;  // closed: one step per level
  std::vector<double> rates;     // open: one step per level
  StepConfig step;               // everything else a step needs (its loop and load are set here)

  // Search: open-loop steps at the rates RateSearch picks; a step passes when its p99 (OK
  // calls) is at most target_p99_ms, at most max_error_fraction of its calls failed, and the
  // server answered at least 90% of what was sent during the window.
  double target_p99_ms = 0;
  double max_error_fraction = 0.01;
  RateSearchOptions search;

  std::chrono::nanoseconds max_run = std::chrono::hours(1);  // the whole run, then stop
};

struct SearchResult {
  double target_p99_ms = 0;
  double best_rate = 0;            // 0: no rate passed
  double lowest_failing_rate = 0;  // 0: none failed
  bool converged = false;
  int best_step = -1;  // index into RunReport::steps
};

struct RunReport {
  std::vector<std::pair<std::string, std::string>> settings;  // echoed into reports
  std::vector<StepSummary> steps;
  std::vector<std::string> verdicts;  // search: per step, "pass" or why it failed
  std::optional<SearchResult> search;
  double wall_s = 0;
  std::string stopped_early;  // "", "interrupted", "hard cap"
};

// Why a search step fails; empty when it passes.
std::string SearchVerdict(const StepSummary& s, double target_p99_ms, double max_error_fraction);

// Called around each step (e.g. to scrape the server's metrics into StepSummary).
struct StepHooks {
  std::function<void()> before;
  std::function<void(StepSummary*)> after;
};

absl::StatusOr<RunReport> RunLoad(const RunPlan& plan, Transport& transport,
                                  const Workload& workload, const ProgressFn& progress,
                                  const StepHooks& hooks, const std::atomic<bool>* interrupt);

}  // namespace visionserve::loadtest
