#pragma once

// visionload's outputs: the live progress line, the table at the end, and the JSON and CSV files
// (the JSON is what loadtest/plot.py reads; its layout is described in README.md).

#include <string>

#include "loadtest/driver.h"
#include "loadtest/runner.h"

namespace visionserve::loadtest {

std::string FormatProgress(const Progress& p);
std::string FormatTable(const RunReport& report);
std::string FormatJson(const RunReport& report);
std::string FormatCsv(const RunReport& report);

// What the server's differenced counters say about a step (zeros without a scrape).
struct ServerCounters {
  double requests = 0, batches = 0, images = 0, cpu_s = 0, dropped_images = 0;
  double cpu_ms_per_request() const { return requests > 0 ? cpu_s * 1e3 / requests : 0; }
  double mean_batch() const { return batches > 0 ? images / batches : 0; }
};
ServerCounters CountersOf(const StepSummary& s);

}  // namespace visionserve::loadtest
