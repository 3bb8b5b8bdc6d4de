// visionserve: the daemon. Flags -> ServerOptions -> Server::Create; SIGTERM/SIGINT drain.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "engine/cpu_features.h"
#include "server/flags.h"
#include "server/server.h"

int main(int argc, char** argv) {
  // Signals are taken by sigwait below; every thread started from here inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  visionserve::KeepFreedMemory();
  visionserve::ServerOptions o;
  int64_t threads = 0, max_message_bytes = o.max_message_bytes, drain_s = 30;
  int64_t max_images = o.classify.max_images_per_request;
  int64_t max_pixels = o.classify.limits.max_pixels;
  visionserve::FlagParser flags(
      "visionserve: gRPC image classification server\n"
      "usage: visionserve [flags]   (without --repository: the embedded default models)");
  flags.String("listen", &o.listen, "gRPC address HOST:PORT (port 0: any free port)");
  flags.String("metrics-listen", &o.metrics_listen,
               "Prometheus metrics address HOST:PORT (GET /metrics); empty: no metrics endpoint");
  flags.String("repository", &o.repository,
               "model repository folder: one <name>.pbtxt (or <name>/config.pbtxt) per model");
  flags.String("default-model", &o.default_model, "model for requests that name none");
  flags.String("default-policy", &o.default_policy,
               "policy for requests that name no model or policy (realtime, balanced, best, or "
               "one from the repository's policies.pbtxt); empty: the default model");
  flags.Int("threads", &threads, "engine and preprocessing threads (0: the CPU allowance)");
  flags.Int("max-message-bytes", &max_message_bytes, "largest request accepted");
  flags.Int("drain-timeout-s", &drain_s, "seconds in-flight requests get to finish on SIGTERM");
  flags.Int("max-images-per-request", &max_images, "images one request may carry");
  flags.Int("max-image-pixels", &max_pixels, "decoded width x height limit (decompression bombs)");
  if (std::optional<int> code = flags.ParseOrExitCode(argc, argv, nullptr, "visionserve")) {
    return *code;
  }
  if (threads < 0 || max_message_bytes < 1024 || drain_s < 0 || max_images < 1 || max_pixels < 1) {
    std::cerr << "visionserve: a numeric flag is out of range (see --help)\n";
    return 2;
  }
  o.threads = static_cast<int>(threads);
  o.max_message_bytes = max_message_bytes;
  o.drain_timeout = absl::Seconds(drain_s);
  o.classify.max_images_per_request = static_cast<int>(max_images);
  o.classify.limits.max_pixels = max_pixels;

  auto server = visionserve::Server::Create(o);
  if (!server.ok()) {
    std::cerr << "visionserve: " << server.status() << "\n";
    return 1;
  }
  const std::string host = o.listen.substr(0, o.listen.rfind(':'));
  const std::string address = absl::StrCat(host, ":", (*server)->port());
  std::cout << "visionserve: listening on " << address << " ("
            << visionserve::engine::IsaName(visionserve::engine::DefaultIsa()) << ", "
            << (o.threads > 0 ? o.threads : visionserve::engine::CpuAllowance())
            << " threads); loading models:";
  for (const auto& m : (*server)->models().models()) std::cout << " " << m->spec().name;
  if ((*server)->metrics_port() > 0) {
    std::cout << "\n  metrics: http://" << o.metrics_listen.substr(0, o.metrics_listen.rfind(':'))
              << ":" << (*server)->metrics_port() << "/metrics";
  }
  std::cout << "\n  try: visionctl --server " << address << " classify photo.jpg\n"
            << "       visionctl --server " << address << " models" << std::endl;

  // Report loading progress from a helper thread so the main thread can wait for signals.
  std::thread progress([&] {
    (*server)->WaitLoaded();
    for (const auto& m : (*server)->models().models()) {
      std::cout << "visionserve: model " << m->spec().name << " "
                << visionserve::repository::ModelStateName(m->state());
      if (m->state() == visionserve::repository::ModelState::kReady) {
        std::cout << " in " << m->load_seconds() << " s (" << m->weights() << ")";
      } else {
        std::cout << ": " << m->state_reason();
      }
      std::cout << std::endl;
    }
    std::cout << "visionserve: "
              << ((*server)->models().AllReady() ? "SERVING" : "NOT_SERVING (a model failed)")
              << std::endl;
  });

  int sig = 0;
  sigwait(&signals, &sig);
  (*server)->BeginDrain();
  std::cout << "visionserve: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ": draining (up to "
            << drain_s << " s)" << std::endl;
  const bool clean = (*server)->Drain();
  progress.join();
  std::cout << "visionserve: stopped" << (clean ? "" : " (drain timeout: some requests cancelled)")
            << std::endl;
  return 0;
}
