#include "tests/e2e/server_process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"

namespace visionserve::testing {

ServerProcess::ServerProcess(const std::string& binary, const std::vector<std::string>& args,
                             std::chrono::seconds timeout, bool expect_start) {
  int fds[2];
  if (pipe(fds) != 0) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    return;
  }
  std::vector<std::string> argv_s = {binary, "--listen", "127.0.0.1:0"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  out_fd_ = fds[0];
  reader_ = std::thread([this] {
    char buf[4096];
    for (;;) {
      const ssize_t n = read(out_fd_, buf, sizeof(buf));
      absl::MutexLock lock(&mu_);
      if (n <= 0) {
        eof_ = true;
        return;
      }
      output_.append(buf, static_cast<size_t>(n));
    }
  });
  if (!WaitForOutput("listening on ",
                     std::chrono::duration_cast<std::chrono::milliseconds>(timeout)) ||
      !WaitForOutput(")", std::chrono::milliseconds(2000))) {
    if (expect_start) ADD_FAILURE() << "server did not start; output:\n" << output();
    return;
  }
  // "listening on 127.0.0.1:PORT ..."
  const std::string out = output();
  const size_t at = out.find("listening on ");
  const size_t colon = at == std::string::npos ? at : out.find(':', at);
  if (colon != std::string::npos) port_ = std::atoi(out.c_str() + colon + 1);
  if (port_ <= 0) ADD_FAILURE() << "no port in output:\n" << out;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !exit_code_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (reader_.joinable()) reader_.join();
  if (out_fd_ >= 0) close(out_fd_);
}

bool ServerProcess::WaitForOutput(const std::string& text, std::chrono::milliseconds timeout) {
  absl::MutexLock lock(&mu_);
  auto found = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return output_.find(text) != std::string::npos || eof_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&found), absl::FromChrono(timeout));
  return output_.find(text) != std::string::npos;
}

std::string ServerProcess::output() const {
  absl::MutexLock lock(&mu_);
  return output_;
}

std::optional<int> ServerProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  const auto until = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < until) {
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      return exit_code_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

std::optional<int> ServerProcess::Stop(int sig, std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  kill(pid_, sig);
  auto code = WaitExit(timeout);
  if (!code) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    exit_code_ = -SIGKILL;
  }
  return code;
}

}  // namespace visionserve::testing
