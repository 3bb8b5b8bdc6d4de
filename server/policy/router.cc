#include "server/policy/router.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace visionserve::policy {

std::vector<Policy> BuiltinPolicies() {
  std::vector<Policy> p(3);
  p[0].name = "realtime";
  p[0].latency_budget_ms = 25;
  p[0].min_top1 = 70;
  p[0].objective = Objective::kFastest;
  p[0].on_miss = OnMiss::kReject;
  p[1].name = "balanced";
  p[1].latency_budget_ms = 100;
  p[1].objective = Objective::kMostAccurate;
  p[1].on_miss = OnMiss::kServeFastest;
  p[2].name = "best";
  p[2].latency_budget_ms = 1000;
  p[2].objective = Objective::kMostAccurate;
  p[2].on_miss = OnMiss::kServeFastest;
  return p;
}

int64_t PredictCompletionMicros(const Candidate& c) {
  const auto predict = [&](int b) -> int64_t {
    return c.latency ? c.latency->PredictMicros(std::clamp(b, 1, c.max_batch_size)) : 0;
  };
  const int max_b = std::max(1, c.max_batch_size);
  const int instances = std::max(1, c.instances);
  // Batches ahead of the new image, including the one it joins.
  const int ahead = c.queue_depth / max_b;
  const int joins = c.queue_depth % max_b + 1;
  int64_t wait = 0;
  if (c.in_flight >= instances) wait += predict(max_b) / 2;  // every instance busy
  wait += ahead * predict(max_b) / instances;
  return wait + predict(joins);
}

absl::StatusOr<Decision> Choose(const Policy& policy, std::span<const Candidate> candidates,
                                int64_t now_us, int64_t deadline_us) {
  int64_t due = deadline_us;
  if (policy.latency_budget_ms > 0) {
    due = std::min(due, now_us + static_cast<int64_t>(policy.latency_budget_ms * 1000));
  }
  std::vector<int> eligible;
  for (int i = 0; i < static_cast<int>(candidates.size()); ++i) {
    const Candidate& c = candidates[i];
    if (c.top1 < policy.min_top1) continue;
    if (!policy.families.empty() && std::find(policy.families.begin(), policy.families.end(),
                                              c.family) == policy.families.end()) {
      continue;
    }
    eligible.push_back(i);
  }
  if (eligible.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "policy %s: no ready model has top-1 >= %.1f%%%s", policy.name, policy.min_top1,
        policy.families.empty()
            ? ""
            : absl::StrCat(" in families ", absl::StrJoin(policy.families, ","))));
  }
  int best = -1, fastest = -1;
  int64_t best_us = 0, fastest_us = INT64_MAX;
  for (int i : eligible) {
    const Candidate& c = candidates[i];
    const int64_t us = PredictCompletionMicros(c);
    if (us < fastest_us) {
      fastest = i;
      fastest_us = us;
    }
    if (due != batching::kNoDeadline && now_us + us > due) continue;
    const bool better = best < 0 || (policy.objective == Objective::kFastest
                                         ? us < best_us
                                         : (c.top1 > candidates[best].top1 ||
                                            (c.top1 == candidates[best].top1 && us < best_us)));
    if (better) {
      best = i;
      best_us = us;
    }
  }
  const double budget_ms =
      due == batching::kNoDeadline ? 0 : static_cast<double>(due - now_us) / 1000;
  Decision d;
  if (best >= 0) {
    d.index = best;
    d.predicted_us = best_us;
    d.reason = absl::StrFormat(
        "policy %s: %s predicted %.1f ms%s, %s", policy.name,
        policy.objective == Objective::kFastest ? "fastest" : "most accurate", best_us / 1000.0,
        due == batching::kNoDeadline ? "" : absl::StrFormat(" within %.1f ms", budget_ms),
        absl::StrFormat("top-1 %.1f%%", candidates[best].top1));
    return d;
  }
  const std::string miss =
      absl::StrFormat("policy %s: no model predicted within %.1f ms (fastest: %s, %.1f ms)",
                      policy.name, budget_ms, candidates[fastest].name, fastest_us / 1000.0);
  if (policy.on_miss == OnMiss::kReject) return absl::DeadlineExceededError(miss);
  d.index = fastest;
  d.predicted_us = fastest_us;
  d.reason = absl::StrCat(miss, "; serving the fastest");
  return d;
}

}  // namespace visionserve::policy
