#include "tests/loadtest/fake_vision_service.h"

#include "absl/time/time.h"

namespace visionserve::loadtest::testing {

class FakeVisionServer::Service final : public v1::VisionService::CallbackService {
 public:
  explicit Service(FakeVisionServer* owner) : owner_(owner) {}
  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* ctx,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    owner_->Accept(reactor, request, response);
    return reactor;
  }

 private:
  FakeVisionServer* owner_;
};

std::unique_ptr<FakeVisionServer> FakeVisionServer::Start(FakeScript script,
                                                          const std::string& address) {
  std::unique_ptr<FakeVisionServer> s(new FakeVisionServer());
  s->script_ = std::move(script);
  s->service_ = std::make_unique<Service>(s.get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder b;
  b.AddListeningPort(address, grpc::InsecureServerCredentials(), &s->port_);
  b.RegisterService(s->service_.get());
  b.SetMaxReceiveMessageSize(64 << 20);
  s->server_ = b.BuildAndStart();
  if (!s->server_ || s->port_ == 0) return nullptr;
  s->address_ = address.substr(0, address.rfind(':') + 1) + std::to_string(s->port_);
  s->timer_ = std::thread([p = s.get()] { p->TimerLoop(); });
  return s;
}

FakeVisionServer::~FakeVisionServer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  timer_.join();  // answers everything held
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
}

void FakeVisionServer::Accept(grpc::ServerUnaryReactor* reactor, const v1::ClassifyRequest* request,
                              v1::ClassifyResponse* response) {
  const auto arrival = Clock::now();
  absl::MutexLock lock(&mu_);
  FakeCall call{received_++, arrival, request};
  arrivals_.push_back(arrival);
  ++models_[request->model()];
  ++in_flight_;
  max_in_flight_ = std::max(max_in_flight_, in_flight_);
  Held h{Clock::time_point(), call.index, reactor, response, arrival, script_(call)};
  h.due = h.answer.due;
  if (stopping_) {
    h.answer.code = grpc::StatusCode::CANCELLED;
    Answer(h);
    return;
  }
  held_.push(std::move(h));
}

void FakeVisionServer::Answer(Held& h) {
  // Counted out before Finish: the client's next call may arrive before Finish returns.
  --in_flight_;
  ++answered_[h.answer.code];
  if (h.answer.code == grpc::StatusCode::OK) {
    v1::ClassifyResponse& r = *h.response;
    r.mutable_served_by()->set_variant(h.answer.variant);
    r.mutable_served_by()->set_model(h.answer.variant);
    v1::Timing* t = r.mutable_timing();
    t->set_queue_us(h.answer.queue_us);
    t->set_compute_us(h.answer.compute_us);
    t->set_total_us(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - h.arrival).count());
    t->set_batch_size(h.answer.batch_size);
    *r.add_results()->mutable_timing() = *t;
    h.reactor->Finish(grpc::Status::OK);
  } else {
    h.reactor->Finish(grpc::Status(h.answer.code, h.answer.message));
  }
}

void FakeVisionServer::TimerLoop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (stopping_) {
      while (!held_.empty()) {
        Held h = held_.top();
        held_.pop();
        h.answer.code = grpc::StatusCode::CANCELLED;
        Answer(h);
      }
      return;
    }
    const auto now = Clock::now();
    if (!held_.empty() && held_.top().due <= now) {
      Held h = held_.top();
      held_.pop();
      Answer(h);
      continue;
    }
    const absl::Duration wait =
        held_.empty() ? absl::Milliseconds(50)
                      : absl::Nanoseconds(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              held_.top().due - now)
                                              .count());
    // Wakes early for a new call that may be due sooner, or for stopping.
    const int64_t seen = received_;
    struct Wake {
      const FakeVisionServer* s;
      int64_t seen;
      bool operator()() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return s->stopping_ || s->received_ != seen;
      }
    } wake{this, seen};
    mu_.AwaitWithTimeout(absl::Condition(&wake), std::min(wait, absl::Milliseconds(50)));
  }
}

int64_t FakeVisionServer::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

int64_t FakeVisionServer::max_in_flight() const {
  absl::MutexLock lock(&mu_);
  return max_in_flight_;
}

std::vector<Clock::time_point> FakeVisionServer::arrivals() const {
  absl::MutexLock lock(&mu_);
  return arrivals_;
}

std::map<grpc::StatusCode, int64_t> FakeVisionServer::answered() const {
  absl::MutexLock lock(&mu_);
  return answered_;
}

std::map<std::string, int64_t> FakeVisionServer::models() const {
  absl::MutexLock lock(&mu_);
  return models_;
}

}  // namespace visionserve::loadtest::testing
