#pragma once

// The seam between the load driver and the wire: one asynchronous Classify call at a time,
// completion by callback. GrpcTransport is the real one; tests may substitute their own.

#include <chrono>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "vision_service.pb.h"

namespace visionserve::loadtest {

// A ClassifyRequest as serialized pieces whose concatenation is the message (see workload.h).
// The views must stay valid until the call completes.
struct CallParts {
  std::string id_part;
  absl::string_view target_part, images_part;
};

// Runs exactly once per call, on a transport thread. `response` is set only when `code` is OK
// and is valid during the callback. It may start new calls and must not block.
using CallDone = absl::AnyInvocable<void(absl::StatusCode code, absl::string_view message,
                                         const v1::ClassifyResponse* response) &&>;

class Transport {
 public:
  virtual ~Transport() = default;
  // Starts one call; `timeout` > 0 sets its deadline from now. Never blocks on the server.
  virtual void Classify(CallParts parts, std::chrono::nanoseconds timeout, CallDone done) = 0;
  // Cancels every call in flight; each completes (CANCELLED, unless it was already finishing).
  virtual void CancelAll() = 0;
};

}  // namespace visionserve::loadtest
