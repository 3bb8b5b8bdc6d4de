#include "server/repository/repository.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace visionserve::repository {

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(
    const std::vector<v1::ModelConfig>& configs, const std::string& default_model,
    PolicyTable policies) {
  if (configs.empty()) return absl::InvalidArgumentError("no models configured");
  std::unique_ptr<ModelRepository> r(new ModelRepository());
  r->policies_ = std::move(policies);
  for (const auto& c : configs) {
    auto spec = Resolve(c);
    if (!spec.ok()) return spec.status();
    r->models_.push_back(std::make_unique<ServedModel>(std::move(*spec)));
  }
  if (!default_model.empty()) {
    bool found = false;
    for (size_t i = 0; i < r->models_.size(); ++i) {
      if (r->models_[i]->spec().name == default_model) {
        r->default_index_ = i;
        found = true;
      }
    }
    if (!found) {
      return absl::NotFoundError(
          absl::StrCat("default model \"", default_model, "\" is not configured"));
    }
  }
  return r;
}

ModelRepository::~ModelRepository() {
  WaitLoaded();
  UnloadAll(/*drain=*/false);
}

void ModelRepository::StartLoading(std::shared_ptr<engine::ThreadPool> pool,
                                   std::function<void()> on_change) {
  absl::MutexLock lock(&loader_mu_);
  loader_ = std::thread([this, pool = std::move(pool), on_change = std::move(on_change)] {
    for (auto& m : models_) {
      (void)m->Load(pool);  // the model records FAILED and its reason
      if (on_change) on_change();
    }
  });
}

void ModelRepository::WaitLoaded() {
  absl::MutexLock lock(&loader_mu_);
  if (loader_.joinable()) loader_.join();
}

absl::StatusOr<ServedModel*> ModelRepository::Find(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& m : models_) {
    if (m->spec().name == name) return m.get();
    names.push_back(m->spec().name);
  }
  return absl::NotFoundError(
      absl::StrCat("unknown model \"", name, "\"; served models: ", absl::StrJoin(names, ", ")));
}

ServedModel* ModelRepository::default_model(ModelTask task) const {
  if (models_[default_index_]->spec().task == task) return models_[default_index_].get();
  for (const auto& m : models_) {
    if (m->spec().task == task) return m.get();
  }
  return nullptr;
}

void ModelRepository::SetGraphHook(const GraphHook& hook) {
  for (auto& m : models_) m->set_graph_hook(hook);
}

bool ModelRepository::AllReady() const {
  for (const auto& m : models_) {
    if (m->state() != ModelState::kReady) return false;
  }
  return true;
}

void ModelRepository::UnloadAll(bool drain) {
  for (auto& m : models_) m->Unload(drain);
}

}  // namespace visionserve::repository
