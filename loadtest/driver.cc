#include "loadtest/driver.h"

#include <sys/resource.h>

#include <algorithm>
#include <limits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace visionserve::loadtest {

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

absl::Duration ToAbsl(Clock::duration d) {
  return absl::Nanoseconds(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// One step's run state. Calls complete on transport threads; the constructing thread runs the
// clock (stop conditions, progress, drain) and, in open loop, a dispatcher thread sends.
class StepRun {
 public:
  StepRun(const StepConfig& c, Transport& transport, const Workload& workload)
      : c_(c),
        transport_(transport),
        workload_(workload),
        start_(Clock::now()),
        measure_start_(start_ + c.warmup),
        measure_end_(c.duration.count() > 0 ? measure_start_ + c.duration
                                            : Clock::time_point::max()),
        hard_stop_(start_ + c.hard_cap),
        collector_({.start = start_, .interval = c.interval, .budget_us = c.budget_us}) {}

  StepSummary Run(const ProgressFn& progress, const std::atomic<bool>* interrupt) {
    std::thread dispatcher;
    if (c_.open_loop) {
      dispatcher = std::thread([this] { Dispatch(); });
    } else {
      for (int i = 0; i < c_.concurrency && IssueClosed(); ++i) {
      }
    }

    // Issuing: wake for the window edges, progress ticks, and a stop by a caller or dispatcher.
    double cpu_at_start = -1, cpu_at_end = -1;
    auto next_progress = start_ + c_.progress_every;
    while (true) {
      const auto before = Clock::now();
      auto wake = std::min({next_progress, hard_stop_,
                            before < measure_end_ ? measure_end_ : Clock::time_point::max(),
                            cpu_at_start < 0 ? measure_start_ : Clock::time_point::max(),
                            before + std::chrono::milliseconds(50)});
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&issuing_done_),
                             ToAbsl(std::max(Clock::duration::zero(), wake - Clock::now())));
      }
      const auto now = Clock::now();
      if (cpu_at_start < 0 && now >= measure_start_) cpu_at_start = ProcessCpuSeconds();
      if (interrupt && interrupt->load()) StopIssuing("interrupted", now);
      if (now >= hard_stop_) StopIssuing("hard cap", now);
      // The open-loop dispatcher ends by itself after the last intended time in the window, even
      // when it runs late: every one of those calls is sent.
      if (!c_.open_loop && now >= measure_end_) StopIssuing("duration", measure_end_);
      if (IssuingDone()) break;
      if (progress && now >= next_progress) {
        Report(progress, now);
        next_progress += c_.progress_every;
      }
    }
    if (dispatcher.joinable()) dispatcher.join();
    const std::string reason = end_reason();
    if (reason == "duration") cpu_at_end = ProcessCpuSeconds();

    // Drain: wait for the calls in flight, then cancel what is left. An interrupt (before or
    // during the drain) leaves at most a second, so the report comes promptly without
    // cancelling calls about to finish.
    auto drain_until = std::min(Clock::now() + c_.drain_timeout, hard_stop_);
    bool drained = false;
    bool cut_short = false;
    while (!drained) {
      const auto now = Clock::now();
      if (!cut_short && interrupt && interrupt->load()) {
        cut_short = true;
        drain_until = std::min(drain_until, now + std::chrono::seconds(1));
      }
      if (now >= drain_until) break;
      const auto wake = std::min({drain_until, next_progress, now + std::chrono::milliseconds(50)});
      {
        absl::MutexLock lock(&mu_);
        drained = mu_.AwaitWithTimeout(absl::Condition(this, &StepRun::NoneOutstanding),
                                       ToAbsl(std::max(Clock::duration::zero(), wake - now)));
      }
      if (!drained && progress && Clock::now() >= next_progress) {
        Report(progress, Clock::now());
        next_progress += c_.progress_every;
      }
    }
    if (!drained) {  // a zero drain timeout never waited
      absl::MutexLock lock(&mu_);
      drained = NoneOutstanding();
    }
    bool drain_timed_out = false;
    if (!drained) {
      drain_timed_out = true;
      // Cancelled calls complete promptly; repeat the cancel in case one raced with it.
      while (true) {
        transport_.CancelAll();
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(this, &StepRun::NoneOutstanding),
                                 absl::Seconds(1))) {
          break;
        }
      }
    }
    const auto end = Clock::now();
    if (cpu_at_start < 0) cpu_at_start = ProcessCpuSeconds();
    if (cpu_at_end < 0) cpu_at_end = ProcessCpuSeconds();

    Clock::time_point window_end, stopped_at;
    {
      absl::MutexLock lock(&mu_);
      stopped_at = stopped_at_;
    }
    if (reason == "duration") {
      window_end = measure_end_;
    } else if (reason == "requests") {
      const int64_t last = last_measured_done_ns_.load();
      window_end = last > 0 ? start_ + std::chrono::nanoseconds(last) : stopped_at;
    } else {
      window_end = stopped_at;
    }
    window_end = std::max(window_end, measure_start_);

    StepSummary s;
    collector_.Finish(measure_start_, window_end, &s);
    s.label = c_.label;
    s.open_loop = c_.open_loop;
    s.concurrency = c_.open_loop ? 0 : c_.concurrency;
    s.offered_rate = c_.open_loop ? c_.rate : 0;
    s.arrivals = c_.open_loop ? ArrivalsName(c_.arrivals) : "";
    s.measure_start_s = Seconds(measure_start_ - start_);
    s.measure_end_s = Seconds(window_end - start_);
    s.end_s = Seconds(end - start_);
    s.end_reason = reason;
    s.drain_timed_out = drain_timed_out;
    s.sent = measured_sent_.load();
    s.calls_started = static_cast<int64_t>(seq_.load());
    {
      absl::MutexLock lock(&mu_);
      s.max_outstanding = max_outstanding_;
    }
    s.cpu_s = std::max(0.0, cpu_at_end - cpu_at_start);
    s.cpu_us_per_request = s.sent ? s.cpu_s * 1e6 / static_cast<double>(s.sent) : 0;
    const double measured_wall = reason == "duration" ? Seconds(measure_end_ - measure_start_)
                                                      : Seconds(end - measure_start_);
    s.cpu_cores = measured_wall > 0 ? s.cpu_s / measured_wall : 0;
    return s;
  }

 private:
  bool NoneOutstanding() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; }
  bool BelowMaxOutstanding() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outstanding_ < c_.max_outstanding || issuing_done_;
  }
  bool IssuingDone() {
    absl::MutexLock lock(&mu_);
    return issuing_done_;
  }
  std::string end_reason() {
    absl::MutexLock lock(&mu_);
    return end_reason_;
  }

  void StopIssuing(const char* reason, Clock::time_point at) {
    absl::MutexLock lock(&mu_);
    if (issuing_done_) return;
    issuing_done_ = true;
    end_reason_ = reason;
    stopped_at_ = at;
  }

  void Report(const ProgressFn& progress, Clock::time_point now) {
    Progress p;
    p.step = &c_;
    p.elapsed_s = Seconds(now - start_);
    p.phase = IssuingDone() ? "drain" : now < measure_start_ ? "warm-up" : "measure";
    p.sent = static_cast<int64_t>(seq_.load());
    {
      absl::MutexLock lock(&mu_);
      p.outstanding = outstanding_;
    }
    p.live = collector_.Snapshot(now);
    progress(p);
  }

  // Closed loop: starts one caller's next call unless issuing is over. Returns whether it did.
  bool IssueClosed() {
    const auto now = Clock::now();
    if (IssuingDone()) return false;
    if (now >= measure_end_) {
      StopIssuing("duration", measure_end_);
      return false;
    }
    const bool measured = now >= measure_start_;
    if (measured && !AdmitMeasured()) return false;
    Issue(now, measured);
    return true;
  }

  // Counts a measured request against max_requests; false (and issuing stops) past the bound.
  bool AdmitMeasured() {
    const int64_t index = measured_sent_.fetch_add(1);
    if (c_.max_requests > 0 && index >= c_.max_requests) {
      measured_sent_.fetch_sub(1);
      StopIssuing("requests", Clock::now());
      return false;
    }
    return true;
  }

  void Dispatch() {
    ArrivalProcess arrivals(c_.arrivals, c_.rate, c_.seed);
    while (true) {
      const auto intended = start_ + arrivals.Next();
      if (intended >= measure_end_) {
        StopIssuing("duration", measure_end_);
        return;
      }
      if (intended >= hard_stop_) return;  // the clock thread stops the step at hard_stop_
      {
        absl::MutexLock lock(&mu_);
        const auto wait = intended - Clock::now();
        if (wait > Clock::duration::zero()) {
          mu_.AwaitWithTimeout(absl::Condition(&issuing_done_), ToAbsl(wait));
        }
        mu_.Await(absl::Condition(this, &StepRun::BelowMaxOutstanding));
        if (issuing_done_) return;
      }
      const bool measured = intended >= measure_start_;
      if (measured && !AdmitMeasured()) return;
      Issue(intended, measured);
    }
  }

  void Issue(Clock::time_point intended, bool measured) {
    const uint64_t seq = seq_.fetch_add(1);
    const Workload::Request req = workload_.Pick(c_.first_seq + seq);
    {
      absl::MutexLock lock(&mu_);
      ++outstanding_;
      max_outstanding_ = std::max(max_outstanding_, outstanding_);
    }
    CallParts parts{Workload::RequestIdPart(absl::StrCat(c_.id_prefix, c_.first_seq + seq)),
                    req.target_part, req.images_part};
    const auto sent = Clock::now();
    const int images = req.images;
    transport_.Classify(
        std::move(parts), c_.deadline,
        [this, intended, sent, measured, images](absl::StatusCode code, absl::string_view message,
                                                 const v1::ClassifyResponse* response) {
          Outcome o;
          o.code = code;
          o.message = message;
          o.intended = intended;
          o.sent = sent;
          o.done = Clock::now();
          o.measured = measured;
          o.images = images;
          if (response) {
            const auto& by = response->served_by();
            o.variant = by.variant().empty() ? by.model() : by.variant();
            const auto& t = response->timing();
            o.server.preprocess_us = t.preprocess_us();
            o.server.queue_us = t.queue_us();
            o.server.compute_us = t.compute_us();
            o.server.total_us = t.total_us();
            for (const auto& r : response->results()) {
              o.server.batch_sizes.push_back(r.timing().batch_size());
            }
          }
          collector_.Record(o);
          if (measured) {
            const int64_t done_ns =
                std::chrono::duration_cast<std::chrono::nanoseconds>(o.done - start_).count();
            int64_t prev = last_measured_done_ns_.load();
            while (prev < done_ns && !last_measured_done_ns_.compare_exchange_weak(prev, done_ns)) {
            }
          }
          // A closed-loop caller sends its next call before this one stops counting, so the
          // drain never sees a false zero.
          if (!c_.open_loop) IssueClosed();
          absl::MutexLock lock(&mu_);
          --outstanding_;
        });
  }

  const StepConfig& c_;
  Transport& transport_;
  const Workload& workload_;
  const Clock::time_point start_, measure_start_, measure_end_, hard_stop_;
  StepCollector collector_;

  std::atomic<uint64_t> seq_{0};
  std::atomic<int64_t> measured_sent_{0};
  std::atomic<int64_t> last_measured_done_ns_{0};

  absl::Mutex mu_;
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t max_outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  bool issuing_done_ ABSL_GUARDED_BY(mu_) = false;
  std::string end_reason_ ABSL_GUARDED_BY(mu_);
  Clock::time_point stopped_at_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<StepSummary> RunStep(const StepConfig& config, Transport& transport,
                                    const Workload& workload, const ProgressFn& progress,
                                    const std::atomic<bool>* interrupt) {
  if (config.duration.count() <= 0 && config.max_requests <= 0) {
    return absl::InvalidArgumentError("a step needs a duration or a request bound");
  }
  if (config.hard_cap.count() <= 0) return absl::InvalidArgumentError("hard cap must be > 0");
  if (config.warmup.count() < 0 || config.duration.count() < 0 || config.max_requests < 0) {
    return absl::InvalidArgumentError("negative warm-up, duration or request bound");
  }
  if (config.open_loop && !(config.rate > 0)) {
    return absl::InvalidArgumentError("open loop needs a rate > 0");
  }
  if (!config.open_loop && config.concurrency < 1) {
    return absl::InvalidArgumentError("closed loop needs a concurrency >= 1");
  }
  if (config.max_outstanding < 1) return absl::InvalidArgumentError("max outstanding must be >= 1");
  if (config.interval.count() <= 0 || config.progress_every.count() <= 0) {
    return absl::InvalidArgumentError("interval and progress period must be > 0");
  }
  StepConfig c = config;
  if (c.label.empty()) {
    c.label = c.open_loop ? absl::StrFormat("%g/s %s", c.rate, ArrivalsName(c.arrivals))
                          : absl::StrCat("c=", c.concurrency);
  }
  StepRun run(c, transport, workload);
  return run.Run(progress, interrupt);
}

}  // namespace visionserve::loadtest
