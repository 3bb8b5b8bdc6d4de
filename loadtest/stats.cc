#include "loadtest/stats.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace visionserve::loadtest {

namespace {

int64_t Micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

constexpr size_t kMaxErrorSamples = 8;

}  // namespace

std::string CodeName(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);
  return name.empty() ? absl::StrCat("CODE_", static_cast<int>(code)) : name;
}

LatencySummary LatencySummary::Of(const Histogram& h) {
  LatencySummary s;
  s.count = h.count();
  s.mean_us = h.mean();
  s.min_us = h.min();
  s.p50_us = h.ValueAtQuantile(0.50);
  s.p90_us = h.ValueAtQuantile(0.90);
  s.p95_us = h.ValueAtQuantile(0.95);
  s.p99_us = h.ValueAtQuantile(0.99);
  s.p999_us = h.ValueAtQuantile(0.999);
  s.max_us = h.max();
  return s;
}

double StepSummary::mean_batch() const {
  int64_t images = 0;
  double weighted = 0;
  for (const auto& [size, n] : batch_sizes) {
    images += n;
    weighted += static_cast<double>(size) * static_cast<double>(n);
  }
  return images ? weighted / static_cast<double>(images) : 0;
}

StepCollector::StepCollector(const Options& options) : o_(options) {}

void StepCollector::Record(const Outcome& r) {
  const bool ok = r.code == absl::StatusCode::kOk;
  const int64_t latency_us = Micros(r.done - r.intended);
  const bool good = ok && (o_.budget_us <= 0 || latency_us <= o_.budget_us);
  const int64_t since_start_us = std::max<int64_t>(0, Micros(r.done - o_.start));
  const size_t interval =
      static_cast<size_t>(since_start_us / std::max<int64_t>(1, Micros(o_.interval)));
  const size_t event = static_cast<size_t>(since_start_us / kEventBucketUs);

  absl::MutexLock lock(&mu_);
  ++completed_;
  if (ok) ++ok_;
  if (intervals_.size() <= interval) intervals_.resize(interval + 1);
  Interval& in = intervals_[interval];
  in.latency.Record(latency_us);
  if (ok) {
    ++in.ok;
    auto it = in.variants.find(r.variant);
    if (it == in.variants.end()) it = in.variants.emplace(std::string(r.variant), 0).first;
    ++it->second;
  } else {
    ++in.errors;
  }
  if (ok_events_.size() <= event) {
    const size_t n = std::max(event + 1, ok_events_.size() * 2);
    ok_events_.resize(n);
    good_events_.resize(n);
    image_events_.resize(n);
    error_events_.resize(n);
  }
  if (ok) {
    ++ok_events_[event];
    image_events_[event] += r.images;
  } else {
    ++error_events_[event];
  }
  if (good) ++good_events_[event];

  if (!r.measured) return;
  StepSummary& m = measured_;
  ++m.completed;
  ++m.codes[CodeName(r.code)];
  m.latency_all.Record(latency_us);
  m.send_lag.Record(Micros(r.sent - r.intended));
  if (!ok) {
    std::string key = absl::StrCat(CodeName(r.code), ": ", r.message);
    auto it = m.error_samples.find(key);
    if (it != m.error_samples.end()) {
      ++it->second;
    } else if (m.error_samples.size() < kMaxErrorSamples) {
      m.error_samples.emplace(std::move(key), 1);
    }
    return;
  }
  ++m.ok;
  if (good) ++m.ok_within_budget;
  m.images_ok += r.images;
  m.latency.Record(latency_us);
  m.server_total.Record(r.server.total_us);
  m.queue.Record(r.server.queue_us);
  m.compute.Record(r.server.compute_us);
  m.preprocess.Record(r.server.preprocess_us);
  for (int32_t b : r.server.batch_sizes) ++m.batch_sizes[b];
  ++m.variants[std::string(r.variant)];
}

TimelinePoint StepCollector::ToPoint(size_t index, const Interval& in) const {
  const double width_s = std::chrono::duration<double>(o_.interval).count();
  TimelinePoint p;
  p.start_s = static_cast<double>(index) * width_s;
  p.end_s = p.start_s + width_s;
  p.ok = in.ok;
  p.errors = in.errors;
  p.p50_us = in.latency.ValueAtQuantile(0.5);
  p.p99_us = in.latency.ValueAtQuantile(0.99);
  p.variants = in.variants;
  return p;
}

StepCollector::Live StepCollector::Snapshot(Clock::time_point now) const {
  Live live;
  const int64_t since_start_us = Micros(now - o_.start);
  absl::MutexLock lock(&mu_);
  live.completed = completed_;
  live.ok = ok_;
  live.errors = completed_ - ok_;
  if (since_start_us <= 0) return live;
  const int64_t current = since_start_us / std::max<int64_t>(1, Micros(o_.interval));
  if (current >= 1) {
    const size_t last = static_cast<size_t>(current - 1);
    live.last = last < intervals_.size() ? ToPoint(last, intervals_[last]) : ToPoint(last, {});
  }
  return live;
}

void StepCollector::Finish(Clock::time_point window_start, Clock::time_point window_end,
                           StepSummary* out) const {
  absl::MutexLock lock(&mu_);
  const StepSummary& m = measured_;
  out->completed = m.completed;
  out->ok = m.ok;
  out->ok_within_budget = m.ok_within_budget;
  out->images_ok = m.images_ok;
  out->codes = m.codes;
  out->error_samples = m.error_samples;
  out->latency = m.latency;
  out->latency_all = m.latency_all;
  out->server_total = m.server_total;
  out->queue = m.queue;
  out->compute = m.compute;
  out->preprocess = m.preprocess;
  out->batch_sizes = m.batch_sizes;
  out->variants = m.variants;
  out->send_lag = m.send_lag;
  out->budget_us = o_.budget_us;

  out->timeline.clear();
  for (size_t i = 0; i < intervals_.size(); ++i) out->timeline.push_back(ToPoint(i, intervals_[i]));

  // The window widened to whole 10 ms buckets.
  const int64_t from = std::max<int64_t>(0, Micros(window_start - o_.start)) / kEventBucketUs;
  const int64_t to =
      (std::max<int64_t>(0, Micros(window_end - o_.start)) + kEventBucketUs - 1) / kEventBucketUs;
  int64_t ok = 0, good = 0, images = 0, errors = 0;
  for (int64_t b = from; b < to && b < static_cast<int64_t>(ok_events_.size()); ++b) {
    ok += ok_events_[b];
    good += good_events_[b];
    images += image_events_[b];
    errors += error_events_[b];
  }
  const double window_s =
      static_cast<double>(to - from) * static_cast<double>(kEventBucketUs) / 1e6;
  out->window_s = window_s;
  if (window_s > 0) {
    out->throughput_rps = static_cast<double>(ok) / window_s;
    out->goodput_rps = static_cast<double>(good) / window_s;
    out->images_per_s = static_cast<double>(images) / window_s;
    out->errors_per_s = static_cast<double>(errors) / window_s;
  }
}

}  // namespace visionserve::loadtest
