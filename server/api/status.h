#pragma once

// The one place absl::Status becomes grpc::Status. Codes map one to one (both follow
// google.rpc.Code); messages pass through unchanged.

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace visionserve::api {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace visionserve::api
