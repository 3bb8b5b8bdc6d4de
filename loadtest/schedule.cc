#include "loadtest/schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace visionserve::loadtest {

const char* ArrivalsName(Arrivals a) { return a == Arrivals::kConstant ? "constant" : "poisson"; }

absl::StatusOr<Arrivals> ParseArrivals(absl::string_view name) {
  if (name == "constant") return Arrivals::kConstant;
  if (name == "poisson") return Arrivals::kPoisson;
  return absl::InvalidArgumentError(
      absl::StrCat("arrivals must be constant or poisson, got \"", name, "\""));
}

ArrivalProcess::ArrivalProcess(Arrivals kind, double rate_per_s, uint64_t seed)
    : kind_(kind), rate_(rate_per_s), rng_(seed), gap_(rate_per_s) {}

std::chrono::nanoseconds ArrivalProcess::Next() {
  double seconds;
  if (kind_ == Arrivals::kConstant) {
    seconds = static_cast<double>(index_++) / rate_;
  } else {
    seconds = poisson_s_;
    poisson_s_ += gap_(rng_);
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(seconds * 1e9)));
}

namespace {

absl::StatusOr<double> ParseLevel(absl::string_view text, bool integers, absl::string_view spec) {
  double v = 0;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &v) || !std::isfinite(v) || v <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad load level \"", text, "\" in \"", spec, "\": want a positive number"));
  }
  if (integers && v != std::floor(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("load level \"", text, "\" in \"", spec, "\" must be a whole number"));
  }
  return v;
}

}  // namespace

absl::StatusOr<std::vector<double>> ParseSweep(absl::string_view spec, bool integers) {
  std::vector<double> out;
  for (absl::string_view part : absl::StrSplit(spec, ',')) {
    part = absl::StripAsciiWhitespace(part);
    const size_t dots = part.find("..");
    if (dots == absl::string_view::npos) {
      auto v = ParseLevel(part, integers, spec);
      if (!v.ok()) return v.status();
      out.push_back(*v);
      continue;
    }
    absl::string_view from_text = part.substr(0, dots), to_text = part.substr(dots + 2), step_text;
    const size_t colon = to_text.find(':');
    if (colon != absl::string_view::npos) {
      step_text = to_text.substr(colon + 1);
      to_text = to_text.substr(0, colon);
    }
    auto from = ParseLevel(from_text, integers, spec);
    if (!from.ok()) return from.status();
    auto to = ParseLevel(to_text, integers, spec);
    if (!to.ok()) return to.status();
    if (*to < *from) {
      return absl::InvalidArgumentError(absl::StrCat("range \"", part, "\" runs backwards"));
    }
    std::optional<double> step;
    if (!step_text.empty()) {
      auto s = ParseLevel(step_text, integers, spec);
      if (!s.ok()) return s.status();
      step = *s;
    }
    constexpr size_t kMaxLevels = 1000;
    for (int i = 0;; ++i) {
      const double v = step ? *from + i * *step : *from * std::ldexp(1.0, i);
      if (v > *to * (1 + 1e-9)) break;
      out.push_back(v);
      if (out.size() > kMaxLevels) {
        return absl::InvalidArgumentError(absl::StrCat("\"", spec, "\" has over 1000 levels"));
      }
    }
    if (out.back() < *to) out.push_back(*to);  // doubling that does not land on the end
  }
  if (out.empty()) return absl::InvalidArgumentError("empty load level list");
  return out;
}

RateSearch::RateSearch(const RateSearchOptions& options) : o_(options) {
  if (o_.start_rate <= 0) o_.start_rate = o_.min_rate;
  o_.start_rate = std::clamp(o_.start_rate, o_.min_rate, o_.max_rate);
}

bool RateSearch::converged() const {
  if (pass_ >= o_.max_rate) return true;
  if (fail_ <= o_.min_rate) return true;
  return pass_ > 0 && std::isfinite(fail_) && (fail_ - pass_) / pass_ <= o_.precision;
}

std::optional<double> RateSearch::NextRate() const {
  if (steps_ >= o_.max_steps || converged()) return std::nullopt;
  if (!std::isfinite(fail_)) {  // still climbing
    return pass_ == 0 ? o_.start_rate : std::min(pass_ * 2, o_.max_rate);
  }
  if (pass_ == 0) return std::max(fail_ / 2, o_.min_rate);  // the first rate failed: descend
  return (pass_ + fail_) / 2;
}

void RateSearch::Report(double rate, bool passed) {
  ++steps_;
  if (passed) {
    pass_ = std::max(pass_, rate);
  } else {
    fail_ = std::min(fail_, rate);
  }
  // Contradictory verdicts (noise near capacity): a failure below a pass wins, the search
  // continues below it.
  if (pass_ >= fail_) pass_ = 0;
}

}  // namespace visionserve::loadtest
