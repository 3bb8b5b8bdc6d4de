#pragma once

// Starts the real visionserve binary on 127.0.0.1 with a free port, reads the port from its
// first output line, and stops it with a signal. Output is collected for assertions.

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace visionserve::testing {

class ServerProcess {
 public:
  // Runs `binary --listen 127.0.0.1:0 args...`. Fails the calling test (and returns false
  // from ok()) when the server does not print its address within `timeout`.
  // With `expect_start` false, a server that exits instead is not a test failure.
  ServerProcess(const std::string& binary, const std::vector<std::string>& args,
                std::chrono::seconds timeout = std::chrono::seconds(60), bool expect_start = true);
  ~ServerProcess();  // SIGKILL if still running

  bool ok() const { return port_ > 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Waits until the output contains `text` (true) or the timeout passes / the process ends.
  bool WaitForOutput(const std::string& text, std::chrono::milliseconds timeout);
  std::string output() const;
  // Sends `sig` and waits up to `timeout` for the exit; the exit code, or nullopt on timeout
  // (then the process is killed) or death by a signal (-signal).
  std::optional<int> Stop(int sig, std::chrono::milliseconds timeout);
  // Waits for an exit without signalling (a process that should fail on its own).
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int out_fd_ = -1;
  std::thread reader_;
  mutable absl::Mutex mu_;
  std::string output_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<int> exit_code_;
};

}  // namespace visionserve::testing
