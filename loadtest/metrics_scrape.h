#pragma once

// The server's own account of a step, from its Prometheus endpoint (visionserve
// --metrics-listen): scraped before and after, counters differenced.

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace visionserve::loadtest {

// Series ("name{label=\"v\",...}" exactly as exposed) -> value.
using MetricSamples = std::map<std::string, double>;

// GET of an http://HOST:PORT/PATH URL (HTTP/1.0, no TLS, no redirects); the body of a 200.
absl::StatusOr<std::string> HttpGet(absl::string_view url, absl::Duration timeout);

// Prometheus text exposition format; comments and blank lines skipped, timestamps ignored.
absl::StatusOr<MetricSamples> ParsePrometheusText(absl::string_view text);

// after - before for the counter-like series (names ending in _total, _count or _sum; histogram
// _bucket series are left out), keeping the non-zero ones. A series missing before counts from 0.
MetricSamples CounterDeltas(const MetricSamples& before, const MetricSamples& after);

// The sum over every label set of metric `name` ("visionserve_requests_total").
double SumByName(const MetricSamples& samples, absl::string_view name);

// The metric name of a series key.
absl::string_view SeriesName(absl::string_view series);

}  // namespace visionserve::loadtest
