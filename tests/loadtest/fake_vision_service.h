#pragma once

// An in-process VisionService on 127.0.0.1:0 whose answers are scripted by the test: when each
// call is answered, with which status, and what the response says (variant, server timing).
// Calls are held by a timer thread, never by a gRPC thread, so any latency distribution, stall or
// queue can be simulated without burning CPU. Used by the driver tests and by fake_visionserve.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "vision_service.grpc.pb.h"

namespace visionserve::loadtest::testing {

using Clock = std::chrono::steady_clock;

struct FakeCall {
  int64_t index = 0;  // arrival order, from 0
  Clock::time_point arrival;
  const v1::ClassifyRequest* request = nullptr;
};

struct FakeAnswer {
  Clock::time_point due;  // when to answer
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;           // for errors
  std::string variant = "fake";  // served_by.variant
  int32_t batch_size = 1;
  int64_t queue_us = 0, compute_us = 0;  // reported as given; total_us is measured
};

// Decides each call's answer; called on a gRPC thread, serialized by the server.
using FakeScript = std::function<FakeAnswer(const FakeCall&)>;

class FakeVisionServer {
 public:
  // Listens on `address` ("127.0.0.1:0": any free port).
  static std::unique_ptr<FakeVisionServer> Start(FakeScript script,
                                                 const std::string& address = "127.0.0.1:0");
  // Answers what is still held with CANCELLED, then shuts down.
  ~FakeVisionServer();

  std::string address() const { return address_; }
  int port() const { return port_; }

  int64_t received() const;
  int64_t max_in_flight() const;
  std::vector<Clock::time_point> arrivals() const;
  std::map<grpc::StatusCode, int64_t> answered() const;  // by status, as sent
  std::map<std::string, int64_t> models() const;         // requests by ClassifyRequest.model

 private:
  class Service;
  struct Held {
    Clock::time_point due;
    int64_t order;
    grpc::ServerUnaryReactor* reactor;
    v1::ClassifyResponse* response;
    Clock::time_point arrival;
    FakeAnswer answer;
    bool operator>(const Held& o) const { return due != o.due ? due > o.due : order > o.order; }
  };

  FakeVisionServer() = default;
  void Accept(grpc::ServerUnaryReactor* reactor, const v1::ClassifyRequest* request,
              v1::ClassifyResponse* response);
  void Answer(Held& h);
  void TimerLoop();

  FakeScript script_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  int port_ = 0;
  std::thread timer_;

  mutable absl::Mutex mu_;
  std::priority_queue<Held, std::vector<Held>, std::greater<Held>> held_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t received_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Clock::time_point> arrivals_ ABSL_GUARDED_BY(mu_);
  std::map<grpc::StatusCode, int64_t> answered_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace visionserve::loadtest::testing
