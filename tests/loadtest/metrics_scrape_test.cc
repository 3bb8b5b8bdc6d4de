#include "loadtest/metrics_scrape.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace visionserve::loadtest {
namespace {

constexpr char kExposition[] = R"(# HELP visionserve_requests_total Requests.
# TYPE visionserve_requests_total counter
visionserve_requests_total{model="a",rpc="Classify",code="OK"} 10
visionserve_requests_total{model="b",rpc="Classify",code="OK"} 5
visionserve_requests_total{model="a",rpc="Classify",code="DEADLINE_EXCEEDED"} 1

visionserve_process_cpu_seconds_total 12.5
visionserve_queue_depth_images{model="a"} 3
visionserve_batch_size_images_bucket{model="a",le="+Inf"} 7
visionserve_batch_size_images_sum{model="a"} 20
visionserve_batch_size_images_count{model="a"} 7
weird{label="has } brace, \"quotes\" and spaces"} 1.5e3 1700000000000
)";

TEST(ParsePrometheusTextTest, SeriesKeepTheirLabelsAndValues) {
  auto m = ParsePrometheusText(kExposition);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->size(), 9u);
  EXPECT_EQ(m->at("visionserve_requests_total{model=\"a\",rpc=\"Classify\",code=\"OK\"}"), 10);
  EXPECT_EQ(m->at("visionserve_process_cpu_seconds_total"), 12.5);
  EXPECT_EQ(m->at("weird{label=\"has } brace, \\\"quotes\\\" and spaces\"}"), 1500);
  EXPECT_EQ(SumByName(*m, "visionserve_requests_total"), 16);
  EXPECT_EQ(SumByName(*m, "visionserve_requests"), 0);  // a prefix is not a name
  EXPECT_EQ(SeriesName("x_total{a=\"1\"}"), "x_total");
}

TEST(ParsePrometheusTextTest, RejectsBrokenLines) {
  EXPECT_FALSE(ParsePrometheusText("metric{a=\"1\" 3\n").ok());
  EXPECT_FALSE(ParsePrometheusText("metric\n").ok());
  EXPECT_FALSE(ParsePrometheusText("metric abc\n").ok());
  EXPECT_TRUE(ParsePrometheusText("# only a comment\n\n").ok());
}

TEST(CounterDeltasTest, DifferencesCountersAndSkipsGaugesAndBuckets) {
  const MetricSamples before = *ParsePrometheusText(kExposition);
  MetricSamples after = before;
  after["visionserve_requests_total{model=\"a\",rpc=\"Classify\",code=\"OK\"}"] = 25;
  after["visionserve_process_cpu_seconds_total"] = 14;
  after["visionserve_queue_depth_images{model=\"a\"}"] = 9;                    // gauge
  after["visionserve_batch_size_images_bucket{model=\"a\",le=\"+Inf\"}"] = 9;  // bucket
  after["visionserve_batch_size_images_count{model=\"a\"}"] = 9;
  after["visionserve_requests_total{model=\"c\",rpc=\"Classify\",code=\"OK\"}"] = 4;  // new
  const MetricSamples d = CounterDeltas(before, after);
  EXPECT_EQ(d.size(), 4u);
  EXPECT_EQ(SumByName(d, "visionserve_requests_total"), 19);
  EXPECT_EQ(SumByName(d, "visionserve_process_cpu_seconds_total"), 1.5);
  EXPECT_EQ(SumByName(d, "visionserve_batch_size_images_count"), 2);
  EXPECT_EQ(d.count("visionserve_queue_depth_images{model=\"a\"}"), 0u);
}

// Serves one HTTP response on 127.0.0.1 to the first connection.
class OneShotHttpServer {
 public:
  explicit OneShotHttpServer(std::string response) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(fd_, 1);
    thread_ = std::thread([this, response] {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      std::string got;
      while (got.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      send(c, response.data(), response.size(), MSG_NOSIGNAL);
      close(c);
    });
  }
  ~OneShotHttpServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1, port_ = 0;
  std::thread thread_;
};

TEST(HttpGetTest, ReturnsTheBodyOfA200) {
  std::string body = kExposition;
  OneShotHttpServer server(
      absl::StrCat("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", body));
  auto got =
      HttpGet(absl::StrCat("http://127.0.0.1:", server.port(), "/metrics"), absl::Seconds(5));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, body);
}

TEST(HttpGetTest, ReportsHttpErrorsAndRefusedConnections) {
  {
    OneShotHttpServer server("HTTP/1.1 404 Not Found\r\n\r\nnope");
    auto got = HttpGet(absl::StrCat("http://127.0.0.1:", server.port(), "/x"), absl::Seconds(5));
    EXPECT_FALSE(got.ok());
    EXPECT_NE(got.status().message().find("404"), absl::string_view::npos);
  }
  // A port nobody listens on.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  auto refused = HttpGet(absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port), "/metrics"),
                         absl::Seconds(2));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpGet("https://x:1/", absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpGet("http://nohost/", absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace visionserve::loadtest
