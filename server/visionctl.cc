// visionctl: command-line client for visionserve.
//   visionctl [--server HOST:PORT] classify IMAGE... [--model M] [--top-k K] [--timeout-ms T]
//   visionctl [--server HOST:PORT] detect IMAGE... [--model M] [--score S] [--iou I]
//             [--max-detections N] [--classes ID,ID...] [--timeout-ms T]
//   visionctl [--server HOST:PORT] models
//   visionctl [--server HOST:PORT] health [--service NAME]
// Exit codes: 0 ok (health: SERVING), 1 the call failed or NOT_SERVING, 2 usage error.
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/flags.h"
#include "vision_service.grpc.pb.h"

namespace {

namespace v1 = visionserve::v1;

int Fail(const grpc::Status& s) {
  std::cerr << "visionctl: "
            << absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())) << ": "
            << s.error_message() << "\n";
  return 1;
}

void SetDeadline(grpc::ClientContext& ctx, int64_t timeout_ms) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
}

const char* StateName(v1::ModelState s) { return v1::ModelState_Name(s).c_str(); }

// Adds each file's bytes as an encoded image; false (after a message) when one cannot be read.
template <typename Request>
bool AddImages(const std::vector<std::string>& files, Request* req) {
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::cerr << "visionctl: cannot read " << f << "\n";
      return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    req->add_images()->set_encoded(ss.str());
  }
  return true;
}

std::string TimingLine(const v1::Timing& t) {
  return absl::StrFormat(
      "  (preprocess %.1f ms, queue %.1f ms, compute %.1f ms in a batch of %d%s, total %.1f ms)\n",
      t.preprocess_us() / 1e3, t.queue_us() / 1e3, t.compute_us() / 1e3, t.batch_size(),
      t.postprocess_us() > 0 ? absl::StrFormat(", postprocess %.1f ms", t.postprocess_us() / 1e3)
                             : "",
      t.total_us() / 1e3);
}

void PrintServedBy(const v1::ServedBy& by) {
  std::cout << absl::StrFormat("model %s (%s v%d, weights: %s; %s)\n", by.model(), by.variant(),
                               by.version(), by.weights(), by.decision_reason());
}

int Classify(v1::VisionService::Stub& stub, const std::vector<std::string>& files,
             const std::string& model, int64_t top_k, int64_t timeout_ms) {
  v1::ClassifyRequest req;
  if (!model.empty()) req.set_model(model);
  req.set_top_k(static_cast<int>(top_k));
  if (!AddImages(files, &req)) return 2;
  v1::ClassifyResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout_ms);
  grpc::Status s = stub.Classify(&ctx, req, &resp);
  if (!s.ok()) return Fail(s);
  PrintServedBy(resp.served_by());
  for (int i = 0; i < resp.results_size(); ++i) {
    const auto& r = resp.results(i);
    std::cout << files[i] << TimingLine(r.timing());
    for (const auto& c : r.classes()) {
      std::cout << absl::StrFormat("  %6.2f%%  %4d  %s\n", 100 * c.score(), c.index(), c.label());
    }
  }
  return 0;
}

struct DetectFlags {
  std::string score, iou, classes;
  int64_t max_detections = 0;
};

int Detect(v1::VisionService::Stub& stub, const std::vector<std::string>& files,
           const std::string& model, const DetectFlags& f, int64_t timeout_ms) {
  v1::DetectRequest req;
  if (!model.empty()) req.set_model(model);
  float value = 0;
  if (!f.score.empty()) {
    if (!absl::SimpleAtof(f.score, &value)) {
      std::cerr << "visionctl: --score wants a number, got \"" << f.score << "\"\n";
      return 2;
    }
    req.set_score_threshold(value);
  }
  if (!f.iou.empty()) {
    if (!absl::SimpleAtof(f.iou, &value)) {
      std::cerr << "visionctl: --iou wants a number, got \"" << f.iou << "\"\n";
      return 2;
    }
    req.set_iou_threshold(value);
  }
  req.set_max_detections(static_cast<int>(f.max_detections));
  if (!f.classes.empty()) {
    for (absl::string_view id : absl::StrSplit(f.classes, ',')) {
      int v = 0;
      if (!absl::SimpleAtoi(id, &v)) {
        std::cerr << "visionctl: --classes wants class ids like 0,2,7, got \"" << f.classes
                  << "\"\n";
        return 2;
      }
      req.add_class_filter(v);
    }
  }
  if (!AddImages(files, &req)) return 2;
  v1::DetectResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout_ms);
  grpc::Status s = stub.Detect(&ctx, req, &resp);
  if (!s.ok()) return Fail(s);
  PrintServedBy(resp.served_by());
  for (int i = 0; i < resp.results_size(); ++i) {
    const auto& r = resp.results(i);
    std::cout << files[i]
              << absl::StrFormat(" %dx%d, %d detections", r.image_width(), r.image_height(),
                                 r.detections_size())
              << TimingLine(r.timing());
    for (const auto& d : r.detections()) {
      std::cout << absl::StrFormat("  %6.2f%%  %3d %-16s [%8.1f %8.1f %8.1f %8.1f]\n",
                                   100 * d.score(), d.class_id(), d.label(), d.box().x1(),
                                   d.box().y1(), d.box().x2(), d.box().y2());
    }
  }
  return 0;
}

int Models(v1::VisionService::Stub& stub, int64_t timeout_ms) {
  v1::ListModelsResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout_ms);
  grpc::Status s = stub.ListModels(&ctx, v1::ListModelsRequest(), &resp);
  if (!s.ok()) return Fail(s);
  std::cout << absl::StrFormat("%-24s %-24s %-8s %-10s %6s %8s %7s  %-22s %s\n", "NAME", "VARIANT",
                               "TASK", "STATE", "INPUT", "GMACs", "TOP1", "WEIGHTS",
                               "LATENCY ms (batch)");
  for (const auto& m : resp.models()) {
    std::string lat;
    for (const auto& p : m.latency_profile()) {
      if (p.measured()) lat += absl::StrFormat("%.1f(%d) ", p.latency_ms(), p.batch_size());
    }
    std::cout << absl::StrFormat("%-24s %-24s %-8s %-10s %6d %8.2f %6.1f%%  %-22s %s%s\n",
                                 m.name() + (m.is_default() ? "*" : ""), m.variant(), m.task(),
                                 StateName(m.state()), m.input_shape_size() ? m.input_shape(0) : 0,
                                 m.gmacs(), m.top1(), m.weights(), lat,
                                 m.state_reason().empty() ? "" : " " + m.state_reason());
  }
  return 0;
}

int Health(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
           int64_t timeout_ms) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout_ms);
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return Fail(s);
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) << "\n";
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:8500", model, service;
  int64_t top_k = 5, timeout_ms = 10000;
  visionserve::FlagParser flags(
      "visionctl: visionserve command-line client\n"
      "usage: visionctl [flags] classify IMAGE...\n"
      "       visionctl [flags] detect IMAGE...\n"
      "       visionctl [flags] models\n"
      "       visionctl [flags] health\n"
      "exit codes: 0 ok (health: SERVING), 1 call failed or NOT_SERVING, 2 usage");
  flags.String("server", &server, "visionserve address HOST:PORT");
  DetectFlags detect;
  flags.String("model", &model, "classify/detect: model name (default: the server's default)");
  flags.Int("top-k", &top_k, "classify: classes per image");
  flags.String("score", &detect.score, "detect: score threshold in [0, 1) (default 0.25)");
  flags.String("iou", &detect.iou, "detect: NMS IoU threshold in (0, 1] (default 0.45)");
  flags.Int("max-detections", &detect.max_detections, "detect: per image (0: 100)");
  flags.String("classes", &detect.classes, "detect: only these class ids, e.g. 0,2,7");
  flags.Int("timeout-ms", &timeout_ms, "call deadline");
  flags.String("service", &service, "health: service name (default: the whole server)");
  std::vector<std::string> args;
  if (std::optional<int> code = flags.ParseOrExitCode(argc, argv, &args, "visionctl")) {
    return *code;
  }
  if (args.empty()) {
    std::cout << flags.Help();
    return 2;
  }
  grpc::ChannelArguments ch_args;
  ch_args.SetMaxReceiveMessageSize(64 << 20);
  ch_args.SetMaxSendMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), ch_args);
  auto stub = v1::VisionService::NewStub(channel);
  const std::string& cmd = args[0];
  if (cmd == "classify") {
    if (args.size() < 2) {
      std::cerr << "visionctl: classify needs at least one image file\n";
      return 2;
    }
    return Classify(*stub, std::vector<std::string>(args.begin() + 1, args.end()), model, top_k,
                    timeout_ms);
  }
  if (cmd == "detect") {
    if (args.size() < 2) {
      std::cerr << "visionctl: detect needs at least one image file\n";
      return 2;
    }
    return Detect(*stub, std::vector<std::string>(args.begin() + 1, args.end()), model, detect,
                  timeout_ms);
  }
  if (cmd == "models") return Models(*stub, timeout_ms);
  if (cmd == "health") return Health(channel, service, timeout_ms);
  std::cerr << "visionctl: unknown command \"" << cmd << "\" (classify, detect, models, health)\n";
  return 2;
}
