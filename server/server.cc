#include "server/server.h"

#include <malloc.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace visionserve {

void KeepFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);  // also disables glibc's dynamic threshold
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(const ServerOptions& options) {
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  std::vector<v1::ModelConfig> configs;
  if (options.repository.empty()) {
    configs = repository::DefaultConfigs();
  } else {
    auto read = repository::ReadRepository(options.repository);
    if (!read.ok()) return read.status();
    configs = std::move(*read);
  }
  auto policies = repository::ReadPolicies(options.repository);
  if (!policies.ok()) return policies.status();
  if (!options.default_policy.empty()) {
    if (!policies->Find(options.default_policy)) {
      return absl::NotFoundError(
          absl::StrCat("default policy \"", options.default_policy, "\" is not defined"));
    }
    policies->default_policy = options.default_policy;
  }
  auto models =
      repository::ModelRepository::Create(configs, options.default_model, std::move(*policies));
  if (!models.ok()) return models.status();
  s->models_ = std::move(*models);
  if (options.graph_hook) s->models_->SetGraphHook(options.graph_hook);
  auto metrics = metrics::ServerMetrics::Create(options.metrics_listen);
  if (!metrics.ok()) return metrics.status();
  s->metrics_ = std::move(*metrics);
  std::vector<std::string> policy_names;
  for (const auto& p : s->models_->policies().policies) policy_names.push_back(p.name);
  policy_names.push_back("inline");
  for (const auto& m : s->models_->models()) {
    m->set_metrics(s->metrics_->AddModel(m->spec().name, policy_names));
  }
  const repository::ModelRepository* repo = s->models_.get();
  s->metrics_->SetModelSource([repo] {
    std::vector<metrics::ModelSnapshot> out;
    for (const auto& m : repo->models()) {
      metrics::ModelSnapshot snap;
      snap.name = m->spec().name;
      snap.family = m->spec().family;
      snap.variant = m->spec().variant;
      snap.weights = m->weights();
      snap.state = repository::ModelStateName(m->state());
      if (m->state() == repository::ModelState::kReady && m->batcher()) {
        snap.queue_depth = m->batcher()->queue_depth();
        snap.in_flight = m->batcher()->in_flight();
      }
      out.push_back(std::move(snap));
    }
    return out;
  });
  s->pool_ = std::make_shared<engine::ThreadPool>(options.threads);
  api::JobOptions classify = options.classify;
  classify.metrics = s->metrics_.get();
  s->service_ = std::make_unique<api::VisionServiceImpl>(s->models_.get(), s->pool_, classify);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &s->port_);
  builder.RegisterService(s->service_.get());
  const int max_bytes = static_cast<int>(std::min<int64_t>(options.max_message_bytes, INT32_MAX));
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  s->grpc_ = builder.BuildAndStart();
  if (!s->grpc_ || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use or invalid?)"));
  }
  s->UpdateHealth();
  Server* raw = s.get();
  s->models_->StartLoading(s->pool_, [raw] { raw->UpdateHealth(); });
  return s;
}

void Server::UpdateHealth() {
  const bool serving = !service_->draining() && models_->AllReady();
  auto* health = grpc_->GetHealthCheckService();
  health->SetServingStatus(serving);  // "" and every registered service
  health->SetServingStatus(v1::VisionService::service_full_name(), serving);
}

void Server::BeginDrain() {
  service_->StartDraining();
  UpdateHealth();
}

bool Server::Drain() {
  if (drained_) return true;
  drained_ = true;
  BeginDrain();
  const absl::Time until = absl::Now() + options_.drain_timeout;
  // Let queued work go without waiting for fuller batches, then wait for it.
  bool clean = true;
  while (service_->in_flight() > 0) {
    if (absl::Now() >= until) {
      clean = false;
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Cancels whatever is left (streams, late requests) and stops accepting connections.
  grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  models_->WaitLoaded();
  models_->UnloadAll(/*drain=*/clean);
  grpc_->Wait();
  return clean;
}

Server::~Server() {
  if (grpc_) Drain();  // Create() may have failed before the gRPC server existed
}

}  // namespace visionserve
