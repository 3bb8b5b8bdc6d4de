#include "loadtest/grpc_transport.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "vision_service.grpc.pb.h"

namespace visionserve::loadtest {

namespace {
const std::string& ClassifyMethod() {
  static const std::string* method = new std::string("/visionserve.v1.VisionService/Classify");
  return *method;
}
}  // namespace

struct GrpcTransport::Call {
  grpc::ClientContext ctx;
  grpc::ByteBuffer request, response;
  v1::ClassifyResponse parsed;
  CallDone done;
  std::atomic<int> refs{1};  // the call itself, plus CancelAll while it holds the pointer
};

GrpcTransport::GrpcTransport(const GrpcTransportOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<GrpcTransport>> GrpcTransport::Create(
    const GrpcTransportOptions& options) {
  if (options.address.empty()) return absl::InvalidArgumentError("no server address");
  if (options.channels < 1 || options.channels > 256) {
    return absl::InvalidArgumentError("channels must be 1..256");
  }
  std::unique_ptr<GrpcTransport> t(new GrpcTransport(options));
  for (int i = 0; i < options.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(options.max_receive_bytes);
    args.SetMaxSendMessageSize(-1);
    // Distinct arguments and a local subchannel pool: one TCP connection per channel.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("visionload.channel", i);
    auto channel =
        grpc::CreateCustomChannel(options.address, grpc::InsecureChannelCredentials(), args);
    t->stubs_.push_back(std::make_unique<grpc::GenericStub>(channel));
    t->channels_.push_back(std::move(channel));
  }
  return t;
}

GrpcTransport::~GrpcTransport() {
  CancelAll();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](absl::flat_hash_set<Call*>* calls) { return calls->empty(); }, &calls_));
}

int64_t GrpcTransport::in_flight() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(calls_.size());
}

void GrpcTransport::Unref(Call* call) {
  if (call->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete call;
}

void GrpcTransport::Classify(CallParts parts, std::chrono::nanoseconds timeout, CallDone done) {
  auto* call = new Call();
  call->done = std::move(done);
  grpc::Slice slices[3];
  size_t n = 0;
  slices[n++] = grpc::Slice(parts.id_part);  // copied: small
  for (absl::string_view p : {parts.target_part, parts.images_part}) {
    if (!p.empty()) slices[n++] = grpc::Slice(p.data(), p.size(), grpc::Slice::STATIC_SLICE);
  }
  call->request = grpc::ByteBuffer(slices, n);
  if (timeout.count() > 0) {
    call->ctx.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout));
  }
  {
    absl::MutexLock lock(&mu_);
    calls_.insert(call);
  }
  const uint64_t channel = next_channel_.fetch_add(1, std::memory_order_relaxed) % stubs_.size();
  stubs_[channel]->UnaryCall(
      &call->ctx, ClassifyMethod(), grpc::StubOptions(), &call->request, &call->response,
      [this, call](grpc::Status status) {
        auto code = static_cast<absl::StatusCode>(status.error_code());
        std::string message = status.error_message();
        const v1::ClassifyResponse* response = nullptr;
        if (status.ok()) {
          grpc::Status parsed = grpc::SerializationTraits<v1::ClassifyResponse>::Deserialize(
              &call->response, &call->parsed);
          if (parsed.ok()) {
            response = &call->parsed;
          } else {
            code = absl::StatusCode::kInternal;
            message = absl::StrCat("unparsable response: ", parsed.error_message());
          }
        }
        std::move(call->done)(code, message, response);
        {
          // After `done`: the destructor's wait covers the user's callback too.
          absl::MutexLock lock(&mu_);
          calls_.erase(call);
        }
        Unref(call);
      });
}

void GrpcTransport::CancelAll() {
  std::vector<Call*> calls;
  {
    absl::MutexLock lock(&mu_);
    for (Call* c : calls_) {
      c->refs.fetch_add(1, std::memory_order_relaxed);
      calls.push_back(c);
    }
  }
  for (Call* c : calls) {
    c->ctx.TryCancel();
    Unref(c);
  }
}

absl::Status GrpcTransport::WaitServing(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  auto health = grpc::health::v1::Health::NewStub(channels_[0]);
  std::string last = "no answer";
  while (absl::Now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Seconds(2))));
    ctx.set_wait_for_ready(true);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    const grpc::Status s = health->Check(&ctx, req, &resp);
    if (s.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) return absl::OkStatus();
    last = s.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status())
                  : absl::StrCat(
                        absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
                        ": ", s.error_message());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return absl::DeadlineExceededError(absl::StrCat(options_.address, " is not SERVING after ",
                                                  absl::FormatDuration(timeout), " (", last, ")"));
}

}  // namespace visionserve::loadtest
