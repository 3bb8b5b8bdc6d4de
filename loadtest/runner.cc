#include "loadtest/runner.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace visionserve::loadtest {

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kClosed:
      return "closed";
    case Mode::kOpen:
      return "open";
    case Mode::kSearch:
      return "search";
  }
  return "?";
}

std::string SearchVerdict(const StepSummary& s, double target_p99_ms, double max_error_fraction) {
  if (s.end_reason == "hard cap" || s.end_reason == "interrupted") return s.end_reason;
  if (s.completed == 0) return "no responses";
  if (s.error_fraction() > max_error_fraction) {
    return absl::StrFormat("errors %.1f%% > %.1f%%", 100 * s.error_fraction(),
                           100 * max_error_fraction);
  }
  const double p99_ms = static_cast<double>(s.latency.ValueAtQuantile(0.99)) / 1e3;
  if (p99_ms > target_p99_ms) {
    return absl::StrFormat("p99 %.2f ms > %.2f ms", p99_ms, target_p99_ms);
  }
  const double sent_rate = s.window_s > 0 ? static_cast<double>(s.sent) / s.window_s : 0;
  if (s.throughput_rps < 0.9 * sent_rate * (1 - s.error_fraction())) {
    return absl::StrFormat("fell behind: %.1f/s answered of %.1f/s sent", s.throughput_rps,
                           sent_rate);
  }
  return "";
}

absl::StatusOr<RunReport> RunLoad(const RunPlan& plan, Transport& transport,
                                  const Workload& workload, const ProgressFn& progress,
                                  const StepHooks& hooks, const std::atomic<bool>* interrupt) {
  if (plan.mode == Mode::kClosed && plan.concurrency.empty()) {
    return absl::InvalidArgumentError("closed loop needs at least one concurrency");
  }
  if (plan.mode == Mode::kOpen && plan.rates.empty()) {
    return absl::InvalidArgumentError("open loop needs at least one rate");
  }
  if (plan.mode == Mode::kSearch && !(plan.target_p99_ms > 0)) {
    return absl::InvalidArgumentError("search needs a p99 objective > 0 ms");
  }
  if (plan.max_run.count() <= 0) return absl::InvalidArgumentError("max run time must be > 0");

  const auto run_start = Clock::now();
  const auto run_end = run_start + plan.max_run;
  RunReport report;
  uint64_t next_seq = plan.step.first_seq;
  std::optional<RateSearch> search;
  if (plan.mode == Mode::kSearch) search.emplace(plan.search);

  for (size_t index = 0;; ++index) {
    StepConfig c = plan.step;
    c.label.clear();
    if (plan.mode == Mode::kClosed) {
      if (index >= plan.concurrency.size()) break;
      c.open_loop = false;
      c.concurrency = plan.concurrency[index];
    } else if (plan.mode == Mode::kOpen) {
      if (index >= plan.rates.size()) break;
      c.open_loop = true;
      c.rate = plan.rates[index];
    } else {
      const std::optional<double> rate = search->NextRate();
      if (!rate) break;
      c.open_loop = true;
      c.rate = *rate;
    }
    if (interrupt && interrupt->load()) {
      report.stopped_early = "interrupted";
      break;
    }
    const auto now = Clock::now();
    if (now >= run_end) {
      report.stopped_early = "hard cap";
      break;
    }
    c.hard_cap = std::min<std::chrono::nanoseconds>(
        c.hard_cap, std::chrono::duration_cast<std::chrono::nanoseconds>(run_end - now));
    c.first_seq = next_seq;
    c.seed = plan.step.seed + index;  // distinct Poisson draws per step, reproducible per run

    if (hooks.before) hooks.before();
    const auto step_start = Clock::now();
    absl::StatusOr<StepSummary> s = RunStep(c, transport, workload, progress, interrupt);
    if (!s.ok()) return s.status();
    s->start_offset_s = std::chrono::duration<double>(step_start - run_start).count();
    if (hooks.after) hooks.after(&*s);
    next_seq += static_cast<uint64_t>(s->calls_started);

    if (search) {
      const std::string why = SearchVerdict(*s, plan.target_p99_ms, plan.max_error_fraction);
      report.verdicts.push_back(why.empty() ? "pass" : why);
      search->Report(c.rate, why.empty());
    }
    const std::string reason = s->end_reason;
    report.steps.push_back(std::move(*s));
    if (reason == "interrupted" || reason == "hard cap") {
      report.stopped_early = reason;
      break;
    }
  }

  if (search) {
    SearchResult r;
    r.target_p99_ms = plan.target_p99_ms;
    r.best_rate = search->best_passing_rate();
    r.lowest_failing_rate =
        std::isfinite(search->lowest_failing_rate()) ? search->lowest_failing_rate() : 0;
    r.converged = search->converged();
    for (size_t i = 0; i < report.steps.size(); ++i) {
      if (report.verdicts[i] == "pass" && report.steps[i].offered_rate == r.best_rate) {
        r.best_step = static_cast<int>(i);
      }
    }
    report.search = r;
  }
  report.wall_s = std::chrono::duration<double>(Clock::now() - run_start).count();
  return report;
}

}  // namespace visionserve::loadtest
