#include "loadtest/report.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "loadtest/json_writer.h"

namespace visionserve::loadtest {
namespace {

TEST(JsonWriterTest, NestsSeparatesAndEscapes) {
  JsonWriter j;
  j.BeginObject();
  j.Field("s", "a\"b\\c\nd\x01");
  j.Key("list").BeginArray().Int(1).Number(2.5).Bool(true).Null().BeginObject().EndObject();
  j.EndArray();
  j.Field("inf", std::numeric_limits<double>::infinity());
  j.Field("big", 123456789.0);
  j.Field("small", 0.000125);
  j.EndObject();
  EXPECT_EQ(j.str(), R"({"s":"a\"b\\c\nd\u0001","list":[1,2.5,true,null,{}],"inf":null,)"
                     R"("big":123456789,"small":0.000125})");
}

StepSummary Step(const std::string& label, double rate, int ok, int errors) {
  StepSummary s;
  s.label = label;
  s.open_loop = true;
  s.offered_rate = rate;
  s.arrivals = "poisson";
  s.sent = s.completed = ok + errors;
  s.ok = ok;
  s.codes["OK"] = ok;
  if (errors) s.codes["DEADLINE_EXCEEDED"] = errors;
  for (int i = 0; i < ok; ++i) s.latency.Record(10000 + i * 100);
  s.window_s = 10;
  s.throughput_rps = ok / 10.0;
  s.variants["efficientnet_b0"] = ok;
  s.end_reason = "duration";
  return s;
}

TEST(ReportTest, TableCsvAndJsonCarryEveryStep) {
  RunReport r;
  r.settings = {{"server", "127.0.0.1:1"}, {"mix", "policy:\"x\""}};
  r.steps = {Step("10/s poisson", 10, 100, 0), Step("20/s poisson", 20, 150, 50)};
  r.verdicts = {"pass", "errors 25.0% > 1.0%"};
  r.search = SearchResult{.target_p99_ms = 50,
                          .best_rate = 10,
                          .lowest_failing_rate = 20,
                          .converged = false,
                          .best_step = 0};

  const std::string table = FormatTable(r);
  EXPECT_NE(table.find("10/s"), std::string::npos);
  EXPECT_NE(table.find("errors 25.0% > 1.0%"), std::string::npos);
  EXPECT_NE(table.find("20/s poisson: errors: DEADLINE_EXCEEDED 50"), std::string::npos);
  EXPECT_NE(table.find("search: highest rate with p99 <= 50.0 ms: 10.0 req/s"), std::string::npos);
  EXPECT_NE(table.find("not converged"), std::string::npos);

  const std::vector<std::string> csv = absl::StrSplit(FormatCsv(r), '\n', absl::SkipEmpty());
  ASSERT_EQ(csv.size(), 3u);
  const size_t columns = std::count(csv[0].begin(), csv[0].end(), ',');
  for (const auto& line : csv)
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), columns) << line;
  EXPECT_EQ(csv[1].rfind("0,open,0,10,poisson,100,100,100,0,", 0), 0u) << csv[1];

  const std::string json = FormatJson(r);
  EXPECT_NE(json.find(R"("mix":"policy:\"x\"")"), std::string::npos);
  EXPECT_NE(json.find(R"("codes":{"DEADLINE_EXCEEDED":50,"OK":150})"), std::string::npos);
  EXPECT_NE(json.find(R"("search":{"target_p99_ms":50,"best_rate":10,)"), std::string::npos);
  EXPECT_NE(json.find(R"("verdict":"pass")"), std::string::npos);
  // The CDF ends at 1 and at the max.
  EXPECT_NE(json.find(R"([19.9,1]],"server")"), std::string::npos);
}

TEST(ReportTest, ServerCountersComeFromTheScrapedDeltas) {
  StepSummary s;
  s.server_metrics = {{"visionserve_requests_total{model=\"a\",code=\"OK\"}", 90},
                      {"visionserve_requests_total{model=\"b\",code=\"OK\"}", 10},
                      {"visionserve_batches_total{model=\"a\"}", 25},
                      {"visionserve_inferred_images_total{model=\"a\"}", 100},
                      {"visionserve_process_cpu_seconds_total", 2.5}};
  const ServerCounters c = CountersOf(s);
  EXPECT_EQ(c.requests, 100);
  EXPECT_EQ(c.mean_batch(), 4);
  EXPECT_DOUBLE_EQ(c.cpu_ms_per_request(), 25);
}

TEST(ReportTest, ProgressLineShowsTheLastInterval) {
  StepConfig c;
  c.label = "c=4";
  Progress p;
  p.step = &c;
  p.phase = "measure";
  p.elapsed_s = 3.2;
  p.sent = 120;
  p.outstanding = 4;
  p.live.ok = 110;
  p.live.errors = 2;
  p.live.last.start_s = 2;
  p.live.last.end_s = 3;
  p.live.last.ok = 40;
  p.live.last.p50_us = 12000;
  p.live.last.p99_us = 30500;
  const std::string line = FormatProgress(p);
  EXPECT_NE(line.find("[c=4 measure   3.2s] sent 120  ok 110  err 2  in flight 4"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("last 1s: 40.0/s ok, p50 12.0 ms, p99 30.5 ms"), std::string::npos) << line;
}

}  // namespace
}  // namespace visionserve::loadtest
