#pragma once

// The policy router: picks the variant that serves a request from its latency budget and
// accuracy floor, using each candidate's latency profile and live queue state. Pure logic:
// no gRPC, no kernels, time passed in.
//
// For each candidate the predicted completion is
//   now + expected queue wait + service time of the batch the request would join,
// where the wait is the rest of the batches in flight (half a batch each, on average) plus the
// queued batches ahead of it spread over the model's instances.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/batching/batch_queue.h"

namespace visionserve::policy {

enum class Objective { kMostAccurate, kFastest };
enum class OnMiss { kReject, kServeFastest };

struct Policy {
  std::string name;              // "inline" for a policy given with a request
  double latency_budget_ms = 0;  // 0: the request's deadline alone
  double min_top1 = 0;           // accuracy floor, ImageNet top-1 %
  Objective objective = Objective::kMostAccurate;
  std::vector<std::string> families;  // empty: any
  OnMiss on_miss = OnMiss::kReject;
};

// The policies a server ships with (overridable per repository):
//   realtime: 25 ms budget, fastest variant above a 70 % floor, reject what cannot make it;
//   balanced: 100 ms budget, most accurate variant predicted to make it, else the fastest;
//   best:     most accurate variant, 1 s budget, else the fastest.
std::vector<Policy> BuiltinPolicies();

// One loaded, READY model as the router sees it.
struct Candidate {
  std::string name;
  std::string family;
  double top1 = 0;
  const batching::LatencyModel* latency = nullptr;
  int max_batch_size = 1;
  int instances = 1;
  int queue_depth = 0;  // images waiting
  int in_flight = 0;    // batches running
};

struct Decision {
  int index = -1;            // into the candidates
  int64_t predicted_us = 0;  // predicted time to the answer
  std::string reason;        // human-readable, returned to the client
};

// Predicted microseconds until a new image sent to `c` now is answered.
int64_t PredictCompletionMicros(const Candidate& c);

// Chooses among `candidates` for a request arriving at `now_us` with `deadline_us`
// (kNoDeadline for none). INVALID_ARGUMENT when no candidate passes the accuracy floor and
// family filter; DEADLINE_EXCEEDED when none is predicted to meet the effective deadline and
// the policy rejects on a miss.
absl::StatusOr<Decision> Choose(const Policy& policy, std::span<const Candidate> candidates,
                                int64_t now_us, int64_t deadline_us);

}  // namespace visionserve::policy
