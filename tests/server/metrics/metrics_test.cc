#include "server/metrics/metrics.h"

#include <cmath>

#include "gtest/gtest.h"

namespace visionserve::metrics {
namespace {

TEST(MetricsTest, LatencyBucketsSpan100MicrosecondsTo10Seconds) {
  const auto b = LatencyBuckets();
  ASSERT_EQ(b.size(), 16u);
  EXPECT_NEAR(b.front(), 1e-4, 1e-12);
  EXPECT_NEAR(b.back(), 10, 1e-9);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_NEAR(b[i] / b[i - 1], std::cbrt(10.0), 1e-9);
}

TEST(MetricsTest, HandlesAreResolvedAtAddAndShowUpWithExactValues) {
  auto m = ServerMetrics::Create("");
  ASSERT_TRUE(m.ok()) << m.status();
  ModelMetrics* h = (*m)->AddModel("fast", {"balanced", "inline"});
  for (auto& per_rpc : h->requests) {
    for (auto* c : per_rpc) ASSERT_NE(c, nullptr);
  }
  ASSERT_EQ(h->decisions.size(), 2u);
  h->requests[static_cast<int>(Rpc::kClassifyStream)][3]->Increment();
  h->images->Increment(5);
  h->batches->Increment(2);
  h->batch_size->Observe(3);
  h->queue_seconds->Observe(0.002);
  h->decisions[1]->Increment();
  (*m)->unrouted()->requests[0][5]->Increment();
  (*m)->SetModelSource([] {
    ModelSnapshot s;
    s.name = "fast";
    s.state = "READY";
    s.queue_depth = 7;
    return std::vector<ModelSnapshot>{s};
  });
  const std::string text = (*m)->Serialize();
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(
      has("visionserve_requests_total{code=\"INVALID_ARGUMENT\",model=\"fast\",rpc="
          "\"ClassifyStream\"} 1"))
      << text;
  EXPECT_TRUE(has("visionserve_requests_total{code=\"NOT_FOUND\",model=\"\",rpc=\"Classify\"} 1"));
  EXPECT_TRUE(has("visionserve_inferred_images_total{model=\"fast\"} 5"));
  EXPECT_TRUE(has("visionserve_batches_total{model=\"fast\"} 2"));
  EXPECT_TRUE(has("visionserve_batch_size_images_bucket{model=\"fast\",le=\"4\"} 1"));
  EXPECT_TRUE(has("visionserve_queue_duration_seconds_count{model=\"fast\"} 1"));
  EXPECT_TRUE(has("visionserve_policy_decisions_total{model=\"fast\",policy=\"inline\"} 1"));
  EXPECT_TRUE(has("visionserve_queue_depth_images{model=\"fast\"} 7"));
  EXPECT_TRUE(has("visionserve_model_state{model=\"fast\",state=\"READY\"} 1"));
  EXPECT_TRUE(has("visionserve_model_state{model=\"fast\",state=\"FAILED\"} 0"));
  EXPECT_NE(text.find("visionserve_process_resident_memory_bytes "), std::string::npos);
}

TEST(MetricsTest, ABadListenAddressIsAnError) {
  auto m = ServerMetrics::Create("256.0.0.1:http");
  EXPECT_FALSE(m.ok());
}

}  // namespace
}  // namespace visionserve::metrics
