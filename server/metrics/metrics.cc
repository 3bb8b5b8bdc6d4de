#include "server/metrics/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

#ifndef VISIONSERVE_VERSION
#define VISIONSERVE_VERSION "0.1.0"
#endif

namespace visionserve::metrics {
namespace {

prometheus::ClientMetric Value(double v) {
  prometheus::ClientMetric m;
  m.gauge.value = v;
  return m;
}

prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

}  // namespace

const char* RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kClassify:
      return "Classify";
    case Rpc::kClassifyStream:
      return "ClassifyStream";
    case Rpc::kDetect:
      return "Detect";
    case Rpc::kDetectStream:
      return "DetectStream";
  }
  return "unknown";
}

std::vector<double> LatencyBuckets() {
  std::vector<double> b;
  for (int i = 0; i < 16; ++i) b.push_back(1e-4 * std::pow(10.0, i / 3.0));
  return b;
}

// Scrape-time gauges: per-model queue depth, batches in flight, state, info; build info;
// process CPU, memory, threads and open fds.
class ServerMetrics::StateCollector : public prometheus::Collectable {
 public:
  void SetSource(std::function<std::vector<ModelSnapshot>()> source) {
    absl::MutexLock lock(&mu_);
    source_ = std::move(source);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<ModelSnapshot> models;
    {
      absl::MutexLock lock(&mu_);
      if (source_) models = source_();
    }
    using prometheus::MetricType;
    auto depth = Family("visionserve_queue_depth_images", "Images waiting in the model's queue.",
                        MetricType::Gauge);
    auto inflight = Family("visionserve_batches_in_flight", "Batches of the model being executed.",
                           MetricType::Gauge);
    auto state =
        Family("visionserve_model_state",
               "1 for the model's current lifecycle state, 0 for the others.", MetricType::Gauge);
    auto info = Family("visionserve_model_info", "Model metadata (value 1).", MetricType::Gauge);
    for (const auto& m : models) {
      auto add = [&](prometheus::MetricFamily& f, double v,
                     std::vector<prometheus::ClientMetric::Label> extra = {}) {
        prometheus::ClientMetric c = Value(v);
        c.label.push_back({"model", m.name});
        for (auto& l : extra) c.label.push_back(l);
        f.metric.push_back(std::move(c));
      };
      add(depth, m.queue_depth);
      add(inflight, m.in_flight);
      for (const char* s : {"LOADING", "WARMING", "READY", "UNLOADING", "FAILED"}) {
        add(state, m.state == s ? 1 : 0, {{"state", s}});
      }
      add(info, 1, {{"family", m.family}, {"variant", m.variant}, {"weights", m.weights}});
    }
    auto build = Family("visionserve_build_info", "Build metadata (value 1).", MetricType::Gauge);
    prometheus::ClientMetric b = Value(1);
    b.label = {{"version", VISIONSERVE_VERSION}};
    build.metric.push_back(b);

    // Process: /proc/self.
    double cpu_s = 0, rss = 0, threads = 0, fds = 0;
    {
      std::ifstream stat("/proc/self/stat");
      std::string line;
      std::getline(stat, line);
      const size_t close = line.rfind(')');
      if (close != std::string::npos) {
        std::istringstream in(line.substr(close + 2));
        std::string field;
        std::vector<std::string> f;
        while (in >> field) f.push_back(field);
        // Fields after the command: state is index 0; utime 11, stime 12, threads 17, rss 21.
        if (f.size() > 21) {
          const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
          cpu_s = (std::stod(f[11]) + std::stod(f[12])) / tick;
          threads = std::stod(f[17]);
          rss = std::stod(f[21]) * static_cast<double>(sysconf(_SC_PAGESIZE));
        }
      }
      if (DIR* d = opendir("/proc/self/fd")) {
        while (dirent* e = readdir(d)) fds += e->d_name[0] != '.';
        closedir(d);
        fds -= 1;  // the directory stream itself
      }
    }
    auto cpu = Family("visionserve_process_cpu_seconds_total", "User and system CPU time.",
                      MetricType::Counter);
    prometheus::ClientMetric c;
    c.counter.value = cpu_s;
    cpu.metric.push_back(c);
    auto mem = Family("visionserve_process_resident_memory_bytes", "Resident set size.",
                      MetricType::Gauge);
    mem.metric.push_back(Value(rss));
    auto th = Family("visionserve_process_threads", "Threads of the process.", MetricType::Gauge);
    th.metric.push_back(Value(threads));
    auto fd = Family("visionserve_process_open_fds", "Open file descriptors.", MetricType::Gauge);
    fd.metric.push_back(Value(fds));
    return {depth, inflight, state, info, build, cpu, mem, th, fd};
  }

 private:
  mutable absl::Mutex mu_;
  std::function<std::vector<ModelSnapshot>()> source_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Create(const std::string& listen) {
  std::unique_ptr<ServerMetrics> m(new ServerMetrics());
  m->registry_ = std::make_shared<prometheus::Registry>();
  auto& r = *m->registry_;
  m->requests_ = &prometheus::BuildCounter()
                      .Name("visionserve_requests_total")
                      .Help("Requests (stream messages for ClassifyStream) by model, rpc and code.")
                      .Register(r);
  m->request_seconds_ = &prometheus::BuildHistogram()
                             .Name("visionserve_request_duration_seconds")
                             .Help("End-to-end request latency, arrival to answer.")
                             .Register(r);
  m->preprocess_seconds_ = &prometheus::BuildHistogram()
                                .Name("visionserve_preprocess_duration_seconds")
                                .Help("Decode and preprocessing time per image.")
                                .Register(r);
  m->queue_seconds_ = &prometheus::BuildHistogram()
                           .Name("visionserve_queue_duration_seconds")
                           .Help("Time an image waited in the batcher's queue.")
                           .Register(r);
  m->compute_seconds_ = &prometheus::BuildHistogram()
                             .Name("visionserve_compute_duration_seconds")
                             .Help("Engine time per executed batch.")
                             .Register(r);
  m->images_ = &prometheus::BuildCounter()
                    .Name("visionserve_inferred_images_total")
                    .Help("Images run through the engine.")
                    .Register(r);
  m->batches_ = &prometheus::BuildCounter()
                     .Name("visionserve_batches_total")
                     .Help("Batches executed (images / batches = average batch size).")
                     .Register(r);
  m->batch_size_ = &prometheus::BuildHistogram()
                        .Name("visionserve_batch_size_images")
                        .Help("Images per executed batch.")
                        .Register(r);
  m->drops_ = &prometheus::BuildCounter()
                   .Name("visionserve_dropped_images_total")
                   .Help("Images dropped before running, by reason.")
                   .Register(r);
  m->slo_ = &prometheus::BuildCounter()
                 .Name("visionserve_budget_requests_total")
                 .Help("Requests with a deadline or budget, answered OK within it or not.")
                 .Register(r);
  m->decisions_ = &prometheus::BuildCounter()
                       .Name("visionserve_policy_decisions_total")
                       .Help("Requests routed by a policy, by policy and chosen model.")
                       .Register(r);
  m->collector_ = std::make_shared<StateCollector>();
  m->unrouted_ = m->AddModel("", {});
  if (!listen.empty()) {
    try {
      m->exposer_ = std::make_unique<prometheus::Exposer>(listen);
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve metrics on ", listen, ": ", e.what()));
    }
    m->exposer_->RegisterCollectable(m->registry_);
    m->exposer_->RegisterCollectable(m->collector_);
    const auto ports = m->exposer_->GetListeningPorts();
    m->port_ = ports.empty() ? 0 : ports[0];
  }
  return m;
}

ServerMetrics::~ServerMetrics() = default;

ModelMetrics* ServerMetrics::AddModel(const std::string& model,
                                      const std::vector<std::string>& policies) {
  auto h = std::make_unique<ModelMetrics>();
  const std::vector<double> latency = LatencyBuckets();
  for (int rpc = 0; rpc < kNumRpcs; ++rpc) {
    const std::string rpc_name = RpcName(static_cast<Rpc>(rpc));
    for (int code = 0; code < kNumCodes; ++code) {
      h->requests[rpc][code] = &requests_->Add(
          {{"model", model},
           {"rpc", rpc_name},
           {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}});
    }
    h->request_seconds[rpc] =
        &request_seconds_->Add({{"model", model}, {"rpc", rpc_name}}, latency);
  }
  if (!model.empty()) {
    h->preprocess_seconds = &preprocess_seconds_->Add({{"model", model}}, latency);
    h->queue_seconds = &queue_seconds_->Add({{"model", model}}, latency);
    h->compute_seconds = &compute_seconds_->Add({{"model", model}}, latency);
    h->images = &images_->Add({{"model", model}});
    h->batches = &batches_->Add({{"model", model}});
    h->batch_size = &batch_size_->Add({{"model", model}}, prometheus::Histogram::BucketBoundaries{
                                                              1, 2, 4, 8, 16, 32, 64, 128, 256});
    h->drops_deadline = &drops_->Add({{"model", model}, {"reason", "deadline"}});
    h->drops_cancelled = &drops_->Add({{"model", model}, {"reason", "cancelled"}});
    h->drops_queue_full = &drops_->Add({{"model", model}, {"reason", "queue_full"}});
    h->within_budget = &slo_->Add({{"model", model}, {"outcome", "within_budget"}});
    h->past_budget = &slo_->Add({{"model", model}, {"outcome", "past_budget"}});
    for (const auto& p : policies) {
      h->decisions.push_back(&decisions_->Add({{"policy", p}, {"model", model}}));
    }
  }
  absl::MutexLock lock(&mu_);
  models_.push_back(std::move(h));
  return models_.back().get();
}

void ServerMetrics::SetModelSource(std::function<std::vector<ModelSnapshot>()> source) {
  collector_->SetSource(std::move(source));
}

std::string ServerMetrics::Serialize() const {
  auto families = registry_->Collect();
  auto more = collector_->Collect();
  families.insert(families.end(), more.begin(), more.end());
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace visionserve::metrics
