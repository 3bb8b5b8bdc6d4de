// fake_visionserve: FakeVisionServer as a process, for testing the visionload binary.
//   fake_visionserve --listen 127.0.0.1:0 --latency-ms 5 --jitter-ms 5 --error-every 0
// Prints "fake_visionserve: listening on HOST:PORT", serves until SIGTERM/SIGINT. Each call is
// answered after latency + jitter * u (u spread evenly over [0, 1)); every error_every-th call
// fails with UNAVAILABLE; the variant reported is the request's model name (or "fake").
#include <pthread.h>
#include <signal.h>

#include <cmath>
#include <iostream>

#include "server/flags.h"
#include "tests/loadtest/fake_vision_service.h"

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::string listen = "127.0.0.1:0";
  int64_t latency_ms = 5, jitter_ms = 0, error_every = 0;
  visionserve::FlagParser flags("fake_visionserve: a scripted VisionService for tests");
  flags.String("listen", &listen, "HOST:PORT");
  flags.Int("latency-ms", &latency_ms, "base answer latency");
  flags.Int("jitter-ms", &jitter_ms, "extra latency spread evenly over [0, jitter)");
  flags.Int("error-every", &error_every, "every Nth call fails with UNAVAILABLE (0: none)");
  if (std::optional<int> code = flags.ParseOrExitCode(argc, argv, nullptr, "fake_visionserve")) {
    return *code;
  }
  using visionserve::loadtest::testing::FakeAnswer;
  using visionserve::loadtest::testing::FakeCall;
  auto server = visionserve::loadtest::testing::FakeVisionServer::Start(
      [=](const FakeCall& c) {
        const double u = std::fmod(static_cast<double>(c.index) * 0.6180339887498949, 1.0);
        FakeAnswer a;
        a.due = c.arrival + std::chrono::microseconds(
                                static_cast<int64_t>(1000 * (latency_ms + jitter_ms * u)));
        a.variant = c.request->model().empty() ? "fake" : c.request->model();
        a.queue_us = 100;
        a.compute_us = latency_ms * 1000;
        if (error_every > 0 && (c.index + 1) % error_every == 0) {
          a.code = grpc::StatusCode::UNAVAILABLE;
          a.message = "scripted failure";
        }
        return a;
      },
      listen);
  if (!server) {
    std::cerr << "fake_visionserve: cannot listen on " << listen << "\n";
    return 1;
  }
  std::cout << "fake_visionserve: listening on " << server->address() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  std::cout << "fake_visionserve: stopped after " << server->received() << " calls" << std::endl;
  return 0;
}
