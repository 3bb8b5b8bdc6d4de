#include "loadtest/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "loadtest/json_writer.h"
#include "loadtest/metrics_scrape.h"

namespace visionserve::loadtest {

namespace {

double Ms(int64_t us) { return static_cast<double>(us) / 1e3; }

void WriteLatency(JsonWriter& j, absl::string_view key, const Histogram& h) {
  const LatencySummary s = LatencySummary::Of(h);
  j.Key(key).BeginObject();
  j.Field("count", s.count);
  j.Field("mean", s.mean_us / 1e3);
  j.Field("min", Ms(s.min_us));
  j.Field("p50", Ms(s.p50_us));
  j.Field("p90", Ms(s.p90_us));
  j.Field("p95", Ms(s.p95_us));
  j.Field("p99", Ms(s.p99_us));
  j.Field("p999", Ms(s.p999_us));
  j.Field("max", Ms(s.max_us));
  j.EndObject();
}

template <typename Map>
void WriteCounts(JsonWriter& j, absl::string_view key, const Map& m) {
  j.Key(key).BeginObject();
  for (const auto& [k, v] : m) j.Key(absl::StrCat(k)).Number(static_cast<double>(v));
  j.EndObject();
}

std::string Share(const std::map<std::string, int64_t>& counts) {
  int64_t total = 0;
  for (const auto& [k, v] : counts) total += v;
  std::vector<std::pair<int64_t, std::string>> sorted;
  for (const auto& [k, v] : counts) sorted.push_back({v, k});
  std::sort(sorted.rbegin(), sorted.rend());
  std::vector<std::string> parts;
  for (const auto& [v, k] : sorted) {
    parts.push_back(absl::StrFormat("%s %.1f%%", k, 100.0 * static_cast<double>(v) / total));
  }
  return absl::StrJoin(parts, ", ");
}

std::string LoadOf(const StepSummary& s) {
  return s.open_loop ? absl::StrFormat("%g/s", s.offered_rate) : absl::StrCat("c=", s.concurrency);
}

}  // namespace

ServerCounters CountersOf(const StepSummary& s) {
  ServerCounters c;
  c.requests = SumByName(s.server_metrics, "visionserve_requests_total");
  c.batches = SumByName(s.server_metrics, "visionserve_batches_total");
  c.images = SumByName(s.server_metrics, "visionserve_inferred_images_total");
  c.cpu_s = SumByName(s.server_metrics, "visionserve_process_cpu_seconds_total");
  c.dropped_images = SumByName(s.server_metrics, "visionserve_dropped_images_total");
  return c;
}

std::string FormatProgress(const Progress& p) {
  std::string line =
      absl::StrFormat("[%s %s %5.1fs] sent %d  ok %d  err %d  in flight %d", p.step->label, p.phase,
                      p.elapsed_s, p.sent, p.live.ok, p.live.errors, p.outstanding);
  const TimelinePoint& last = p.live.last;
  const double width = last.end_s - last.start_s;
  if (width > 0) {
    absl::StrAppend(&line, absl::StrFormat("  | last %.0fs: %.1f/s ok, p50 %.1f ms, p99 %.1f ms",
                                           width, static_cast<double>(last.ok) / width,
                                           Ms(last.p50_us), Ms(last.p99_us)));
    if (last.errors > 0) {
      absl::StrAppend(&line,
                      absl::StrFormat(", %.1f/s errors", static_cast<double>(last.errors) / width));
    }
  }
  return line;
}

std::string FormatTable(const RunReport& r) {
  std::string out;
  bool any_metrics = false;
  for (const auto& s : r.steps) any_metrics |= !s.server_metrics.empty();
  const bool search = r.search.has_value();

  absl::StrAppend(
      &out, absl::StrFormat("%-10s %7s %7s %6s %8s %8s %7s %7s %7s %8s %8s %5s %6s %6s %7s", "load",
                            "sent", "ok", "err", "ok/s", "good/s", "p50", "p90", "p99", "p99.9",
                            "max", "batch", "queue", "comp", "gen"));
  if (any_metrics) absl::StrAppend(&out, absl::StrFormat(" %7s", "server"));
  if (search) absl::StrAppend(&out, "  verdict");
  absl::StrAppend(&out, "\n",
                  absl::StrFormat("%-10s %7s %7s %6s %8s %8s %7s %7s %7s %8s %8s %5s %6s %6s %7s",
                                  "", "", "", "", "req/s", "req/s", "ms", "ms", "ms", "ms", "ms",
                                  "mean", "p50 ms", "p50 ms", "us/req"));
  if (any_metrics) absl::StrAppend(&out, absl::StrFormat(" %7s", "ms/req"));
  absl::StrAppend(&out, "\n");
  for (size_t i = 0; i < r.steps.size(); ++i) {
    const StepSummary& s = r.steps[i];
    const LatencySummary l = LatencySummary::Of(s.latency);
    absl::StrAppend(
        &out, absl::StrFormat(
                  "%-10s %7d %7d %6d %8.1f %8.1f %7.1f %7.1f %7.1f %8.1f %8.1f %5.2f %6.1f %6.1f "
                  "%7.0f",
                  LoadOf(s), s.sent, s.ok, s.completed - s.ok, s.throughput_rps, s.goodput_rps,
                  Ms(l.p50_us), Ms(l.p90_us), Ms(l.p99_us), Ms(l.p999_us), Ms(l.max_us),
                  s.mean_batch(), Ms(s.queue.ValueAtQuantile(0.5)),
                  Ms(s.compute.ValueAtQuantile(0.5)), s.cpu_us_per_request));
    if (any_metrics) {
      const ServerCounters c = CountersOf(s);
      absl::StrAppend(&out, c.requests > 0 ? absl::StrFormat(" %7.2f", c.cpu_ms_per_request())
                                           : absl::StrFormat(" %7s", "-"));
    }
    if (search && i < r.verdicts.size()) absl::StrAppend(&out, "  ", r.verdicts[i]);
    absl::StrAppend(&out, "\n");
  }

  // Per-step details: errors, variant mix, anything unusual.
  for (const StepSummary& s : r.steps) {
    std::vector<std::string> notes;
    std::map<std::string, int64_t> errors;
    for (const auto& [code, n] : s.codes) {
      if (code != "OK") errors[code] = n;
    }
    if (!errors.empty()) {
      std::vector<std::string> parts;
      for (const auto& [code, n] : errors) parts.push_back(absl::StrCat(code, " ", n));
      notes.push_back(absl::StrCat("errors: ", absl::StrJoin(parts, ", ")));
    }
    if (s.variants.size() > 1 || (!s.variants.empty() && r.steps.size() == 1)) {
      notes.push_back(absl::StrCat("variants: ", Share(s.variants)));
    }
    if (s.open_loop) {
      // A few ms late is scheduler noise on a busy machine (and is in the latency anyway); more
      // means the generator could not keep the schedule.
      const int64_t lag99 = s.send_lag.ValueAtQuantile(0.99);
      if (lag99 > 5000) {
        notes.push_back(
            absl::StrFormat("sent late (counted in the latency): send lag p99 %.1f ms, max %.1f ms",
                            Ms(lag99), Ms(s.send_lag.max())));
      }
    }
    if (s.drain_timed_out) notes.push_back("drain timed out: calls cancelled");
    if (s.end_reason == "hard cap" || s.end_reason == "interrupted") {
      notes.push_back(absl::StrCat("stopped: ", s.end_reason));
    }
    if (!s.server_metrics_error.empty()) {
      notes.push_back(absl::StrCat("metrics: ", s.server_metrics_error));
    }
    if (!s.server_metrics.empty()) {
      const ServerCounters c = CountersOf(s);
      notes.push_back(absl::StrFormat(
          "server: %.0f requests, %.0f batches (mean %.2f images), CPU %.2f s, %.0f dropped",
          c.requests, c.batches, c.mean_batch(), c.cpu_s, c.dropped_images));
    }
    for (const auto& n : notes) absl::StrAppend(&out, "  ", s.label, ": ", n, "\n");
  }
  if (search) {
    const SearchResult& sr = *r.search;
    if (sr.best_rate > 0) {
      absl::StrAppend(&out, absl::StrFormat("search: highest rate with p99 <= %.1f ms: %.1f req/s",
                                            sr.target_p99_ms, sr.best_rate));
      if (sr.best_step >= 0) {
        const StepSummary& b = r.steps[static_cast<size_t>(sr.best_step)];
        absl::StrAppend(
            &out, absl::StrFormat(" (p99 %.1f ms, %.1f ok/s)", Ms(b.latency.ValueAtQuantile(0.99)),
                                  b.throughput_rps));
      }
    } else {
      absl::StrAppend(&out,
                      absl::StrFormat("search: no rate met p99 <= %.1f ms", sr.target_p99_ms));
    }
    if (sr.lowest_failing_rate > 0) {
      absl::StrAppend(&out, absl::StrFormat("; lowest failing %.1f req/s", sr.lowest_failing_rate));
    }
    absl::StrAppend(&out, sr.converged ? "" : " (not converged: step limit)", "\n");
  }
  if (!r.stopped_early.empty()) absl::StrAppend(&out, "run stopped early: ", r.stopped_early, "\n");
  absl::StrAppend(&out,
                  "latency from the intended send time (open loop) or the send (closed loop); "
                  "ok/s and good/s count answers received in the window; gen = visionload's "
                  "own CPU\n");
  return out;
}

std::string FormatJson(const RunReport& r) {
  JsonWriter j;
  j.BeginObject();
  j.Field("tool", "visionload");
  j.Field("format", 1);
  j.Key("settings").BeginObject();
  for (const auto& [k, v] : r.settings) j.Field(k, v);
  j.EndObject();
  j.Field("wall_s", r.wall_s);
  j.Field("stopped_early", r.stopped_early);
  if (r.search) {
    j.Key("search").BeginObject();
    j.Field("target_p99_ms", r.search->target_p99_ms);
    j.Field("best_rate", r.search->best_rate);
    j.Field("lowest_failing_rate", r.search->lowest_failing_rate);
    j.Field("converged", r.search->converged);
    j.Field("best_step", r.search->best_step);
    j.EndObject();
  } else {
    j.Key("search").Null();
  }
  j.Key("steps").BeginArray();
  for (size_t i = 0; i < r.steps.size(); ++i) {
    const StepSummary& s = r.steps[i];
    j.BeginObject();
    j.Field("label", s.label);
    j.Field("loop", s.open_loop ? "open" : "closed");
    j.Field("concurrency", s.concurrency);
    j.Field("offered_rate", s.offered_rate);
    j.Field("arrivals", s.arrivals);
    j.Field("start_offset_s", s.start_offset_s);
    j.Field("measure_start_s", s.measure_start_s);
    j.Field("measure_end_s", s.measure_end_s);
    j.Field("end_s", s.end_s);
    j.Field("end_reason", s.end_reason);
    j.Field("drain_timed_out", s.drain_timed_out);
    if (i < r.verdicts.size()) j.Field("verdict", r.verdicts[i]);
    j.Field("sent", s.sent);
    j.Field("completed", s.completed);
    j.Field("ok", s.ok);
    j.Field("errors", s.completed - s.ok);
    j.Field("ok_within_budget", s.ok_within_budget);
    j.Field("budget_ms", Ms(s.budget_us));
    j.Field("images_ok", s.images_ok);
    WriteCounts(j, "codes", s.codes);
    WriteCounts(j, "error_samples", s.error_samples);
    j.Field("window_s", s.window_s);
    j.Field("throughput_rps", s.throughput_rps);
    j.Field("goodput_rps", s.goodput_rps);
    j.Field("images_per_s", s.images_per_s);
    j.Field("errors_per_s", s.errors_per_s);
    WriteLatency(j, "latency_ms", s.latency);
    WriteLatency(j, "latency_all_ms", s.latency_all);
    // [upper edge ms, cumulative fraction] per non-empty bucket: the latency CDF.
    j.Key("latency_cdf").BeginArray();
    int64_t seen = 0;
    for (const auto& b : s.latency.NonEmptyBuckets()) {
      seen += b.count;
      j.BeginArray()
          .Number(Ms(std::min(b.high, s.latency.max())))
          .Number(static_cast<double>(seen) / static_cast<double>(s.latency.count()))
          .EndArray();
    }
    j.EndArray();
    j.Key("server").BeginObject();
    WriteLatency(j, "total_ms", s.server_total);
    WriteLatency(j, "queue_ms", s.queue);
    WriteLatency(j, "compute_ms", s.compute);
    WriteLatency(j, "preprocess_ms", s.preprocess);
    WriteCounts(j, "batch_sizes", s.batch_sizes);
    j.Field("mean_batch", s.mean_batch());
    j.EndObject();
    WriteCounts(j, "variants", s.variants);
    j.Key("timeline").BeginArray();
    for (const TimelinePoint& p : s.timeline) {
      j.BeginObject();
      j.Field("start_s", p.start_s);
      j.Field("end_s", p.end_s);
      j.Field("ok", p.ok);
      j.Field("errors", p.errors);
      j.Field("p50_ms", Ms(p.p50_us));
      j.Field("p99_ms", Ms(p.p99_us));
      WriteCounts(j, "variants", p.variants);
      j.EndObject();
    }
    j.EndArray();
    j.Key("generator").BeginObject();
    j.Field("cpu_s", s.cpu_s);
    j.Field("cpu_us_per_request", s.cpu_us_per_request);
    j.Field("cpu_cores", s.cpu_cores);
    j.Field("calls_started", s.calls_started);
    j.Field("max_outstanding", s.max_outstanding);
    WriteLatency(j, "send_lag_ms", s.send_lag);
    j.EndObject();
    if (!s.server_metrics.empty() || !s.server_metrics_error.empty()) {
      const ServerCounters c = CountersOf(s);
      j.Key("server_metrics").BeginObject();
      j.Field("error", s.server_metrics_error);
      j.Field("requests", c.requests);
      j.Field("batches", c.batches);
      j.Field("images", c.images);
      j.Field("mean_batch", c.mean_batch());
      j.Field("cpu_s", c.cpu_s);
      j.Field("cpu_ms_per_request", c.cpu_ms_per_request());
      j.Field("dropped_images", c.dropped_images);
      j.Key("deltas").BeginObject();
      for (const auto& [k, v] : s.server_metrics) j.Field(k, v);
      j.EndObject();
      j.EndObject();
    }
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  return j.str() + "\n";
}

std::string FormatCsv(const RunReport& r) {
  std::string out =
      "step,loop,concurrency,offered_rate,arrivals,sent,completed,ok,errors,ok_within_budget,"
      "window_s,throughput_rps,goodput_rps,images_per_s,p50_ms,p90_ms,p95_ms,p99_ms,p999_ms,"
      "max_ms,mean_ms,server_total_p50_ms,queue_p50_ms,compute_p50_ms,mean_batch,"
      "gen_cpu_us_per_request,gen_cpu_cores,send_lag_p99_ms,server_cpu_ms_per_request,end_reason,"
      "verdict\n";
  for (size_t i = 0; i < r.steps.size(); ++i) {
    const StepSummary& s = r.steps[i];
    const LatencySummary l = LatencySummary::Of(s.latency);
    const ServerCounters c = CountersOf(s);
    absl::StrAppend(
        &out,
        absl::StrFormat(
            "%d,%s,%d,%g,%s,%d,%d,%d,%d,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,"
            "%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.1f,%.3f,%.3f,%.3f,%s,\"%s\"\n",
            i, s.open_loop ? "open" : "closed", s.concurrency, s.offered_rate, s.arrivals, s.sent,
            s.completed, s.ok, s.completed - s.ok, s.ok_within_budget, s.window_s, s.throughput_rps,
            s.goodput_rps, s.images_per_s, Ms(l.p50_us), Ms(l.p90_us), Ms(l.p95_us), Ms(l.p99_us),
            Ms(l.p999_us), Ms(l.max_us), l.mean_us / 1e3, Ms(s.server_total.ValueAtQuantile(0.5)),
            Ms(s.queue.ValueAtQuantile(0.5)), Ms(s.compute.ValueAtQuantile(0.5)), s.mean_batch(),
            s.cpu_us_per_request, s.cpu_cores, Ms(s.send_lag.ValueAtQuantile(0.99)),
            c.cpu_ms_per_request(), s.end_reason, i < r.verdicts.size() ? r.verdicts[i] : ""));
  }
  return out;
}

}  // namespace visionserve::loadtest
