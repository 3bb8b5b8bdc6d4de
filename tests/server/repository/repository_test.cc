#include "server/repository/repository.h"

#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/repository/model_config.h"

namespace visionserve::repository {
namespace {

// When SIGTERM arrives while models load, the daemon waits for the loader from two threads at
// once (its progress reporter and Server::Drain). Every waiter must return once loading ends:
// two concurrent joins of the loader thread left the drain hanging, and a container stopped
// during start-up ignored SIGTERM until it was killed.
TEST(ModelRepositoryTest, SeveralThreadsCanWaitForLoadingAtOnce) {
  v1::ModelConfig config;
  config.set_name("m");
  config.set_variant("regnet_y_400mf");
  auto repo = ModelRepository::Create({config}, "");
  ASSERT_TRUE(repo.ok()) << repo.status();
  (*repo)->StartLoading(std::make_shared<engine::ThreadPool>(1), nullptr);
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) waiters.emplace_back([&] { (*repo)->WaitLoaded(); });
  for (auto& t : waiters) t.join();
  EXPECT_TRUE((*repo)->AllReady());
  (*repo)->WaitLoaded();  // and again after loading: returns at once
}

}  // namespace
}  // namespace visionserve::repository
