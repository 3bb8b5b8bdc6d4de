#pragma once

// The gRPC transport: generic-stub callback calls spread round-robin over several channels
// (each its own HTTP/2 connection). Request bodies go out as reference slices of the
// Workload's prebuilt parts, so a call copies only its request_id.

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "loadtest/transport.h"

namespace visionserve::loadtest {

struct GrpcTransportOptions {
  std::string address;  // HOST:PORT
  int channels = 2;     // separate connections, >= 1
  int max_receive_bytes = 64 << 20;
};

class GrpcTransport final : public Transport {
 public:
  static absl::StatusOr<std::unique_ptr<GrpcTransport>> Create(const GrpcTransportOptions& options);
  // Cancels the calls in flight and waits for their callbacks.
  ~GrpcTransport() override;

  void Classify(CallParts parts, std::chrono::nanoseconds timeout, CallDone done) override;
  void CancelAll() override;

  // Waits until grpc.health.v1 reports the server SERVING (a server without the health service
  // counts as ready once a channel connects). DEADLINE_EXCEEDED after `timeout`.
  absl::Status WaitServing(absl::Duration timeout);

  const std::shared_ptr<grpc::Channel>& channel(int i) const { return channels_[i]; }
  int64_t in_flight() const;

 private:
  struct Call;
  explicit GrpcTransport(const GrpcTransportOptions& options);
  static void Unref(Call* call);

  GrpcTransportOptions options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  std::atomic<uint64_t> next_channel_{0};
  mutable absl::Mutex mu_;
  absl::flat_hash_set<Call*> calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace visionserve::loadtest
