#pragma once

// The visionserve daemon as a library: gRPC server (VisionService, grpc.health.v1, reflection),
// model repository, shared engine pool. main.cc only parses flags and handles signals; tests
// start it in-process or as the real binary.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/executor.h"
#include "grpcpp/server.h"
#include "server/api/vision_service.h"
#include "server/metrics/metrics.h"
#include "server/repository/repository.h"

namespace visionserve {

struct ServerOptions {
  std::string listen = "127.0.0.1:8500";  // HOST:PORT; port 0 picks a free one
  std::string metrics_listen;             // Prometheus GET /metrics HOST:PORT; empty: off
  int threads = 0;                        // engine + preprocessing; 0: the CPU allowance
  std::string repository;                 // model repository folder; empty: embedded default
  std::string default_model;              // empty: the first configured model
  std::string default_policy;             // requests naming no model/policy use it; empty:
                                          // policies.pbtxt's default, else the default model
  int64_t max_message_bytes = 64 << 20;   // larger requests: RESOURCE_EXHAUSTED
  absl::Duration drain_timeout = absl::Seconds(30);
  api::JobOptions classify;  // Classify and Detect
  // Runs on every model's graph before it is compiled (see repository::GraphHook); empty: none.
  repository::GraphHook graph_hook;
};

// Tells glibc malloc to keep freed memory instead of returning it to the OS: request
// tensors (600 KB for a 224 px float image) would otherwise come from fresh mmap'ed or
// re-grown heap pages, and a first-touch page fault costs ~12 µs per 4 KiB page on these VMs
// (~1.8 ms per such buffer). RSS stays at its high-water mark. Call once, early in main.
void KeepFreedMemory();

class Server {
 public:
  // Reads the configuration, binds the port and starts loading models in the background.
  // Health reports NOT_SERVING until every model is READY.
  static absl::StatusOr<std::unique_ptr<Server>> Create(const ServerOptions& options);
  ~Server();

  int port() const { return port_; }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  metrics::ServerMetrics* metrics() const { return metrics_.get(); }
  const repository::ModelRepository& models() const { return *models_; }
  // Blocks until every model has finished loading (READY or FAILED).
  void WaitLoaded() { models_->WaitLoaded(); }
  // Graceful stop: health NOT_SERVING, new requests UNAVAILABLE, accepted ones complete
  // within the drain timeout (then are cancelled), models unloaded. Returns true when
  // everything in flight finished in time.
  bool Drain();
  // Drain's first step alone, returning at once: health NOT_SERVING, new requests UNAVAILABLE.
  // main() calls it before it announces the drain, so whoever reads the announcement sees it.
  void BeginDrain();

 private:
  Server() = default;
  void UpdateHealth();

  ServerOptions options_;
  std::unique_ptr<metrics::ServerMetrics> metrics_;
  std::shared_ptr<engine::ThreadPool> pool_;
  std::unique_ptr<repository::ModelRepository> models_;
  std::unique_ptr<api::VisionServiceImpl> service_;
  std::unique_ptr<grpc::Server> grpc_;
  int port_ = 0;
  bool drained_ = false;
};

}  // namespace visionserve
