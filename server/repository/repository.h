#pragma once

// The set of models a server serves, loaded in the background (one at a time: loading is
// CPU-bound and the machine's cores are shared with serving) in configuration order.

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/executor.h"
#include "server/repository/served_model.h"

namespace visionserve::repository {

class ModelRepository {
 public:
  // Resolves every config (any error fails creation, naming the model). The first model is
  // the default unless `default_model` names another.
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Create(
      const std::vector<v1::ModelConfig>& configs, const std::string& default_model,
      PolicyTable policies = {policy::BuiltinPolicies(), ""});
  ~ModelRepository();

  // Starts loading every model on `pool`; `on_change` runs after each model's load ends
  // (READY or FAILED), from the loader thread.
  void StartLoading(std::shared_ptr<engine::ThreadPool> pool, std::function<void()> on_change);
  // Blocks until the loader thread has finished with every model. Any number of threads may
  // wait at once (SIGTERM during loading: the drain and the progress reporter both do).
  void WaitLoaded();

  // NOT_FOUND naming the known models.
  absl::StatusOr<ServedModel*> Find(const std::string& name) const;
  // The default model of the Classify RPC (the configured default when it is a classifier, else
  // the first classifier), or of Detect (likewise); nullptr when no model has that task.
  ServedModel* default_model(ModelTask task = ModelTask::kClassify) const;
  // Sets the graph hook of every model; call before StartLoading.
  void SetGraphHook(const GraphHook& hook);
  const std::vector<std::unique_ptr<ServedModel>>& models() const { return models_; }
  bool AllReady() const;
  const PolicyTable& policies() const { return policies_; }
  // Stops every batcher (draining queued work when `drain`).
  void UnloadAll(bool drain);

 private:
  ModelRepository() = default;
  std::vector<std::unique_ptr<ServedModel>> models_;
  size_t default_index_ = 0;
  PolicyTable policies_;
  absl::Mutex loader_mu_;  // one join at a time: a second concurrent join never returns
  std::thread loader_ ABSL_GUARDED_BY(loader_mu_);
};

}  // namespace visionserve::repository
