#include "loadgen/echo_target.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/model_config.h"
#include "common/synthetic_model.h"
#include "pdserve.grpc.pb.h"
#include "proto/model_spec.h"

namespace pdserve::loadgen {

namespace v1 = pdserve::v1;

class EchoTarget::Service final : public v1::Router::CallbackService {
 public:
  Service(const EchoTargetOptions& options, ModelConfig config)
      : options_(options), config_(std::move(config)) {}

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;

  // As a router's: the model (clients verify against it), no workers.
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::StatusRequest*,
                                      v1::ClusterStatus* response) override {
    response->set_preset(config_.name);
    *response->mutable_model() = ModelSpecOf(config_);
    response->set_transfer_backend("none");
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  uint64_t requests_seen() const { return seen_.load(std::memory_order_relaxed); }

 private:
  friend class EchoStream;
  const EchoTargetOptions options_;
  const ModelConfig config_;
  std::atomic<uint64_t> seen_{0};
};

namespace {

// Writes the whole answer, one chunk per write, then finishes; deletes itself when done.
class EchoStream final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  EchoStream(std::vector<int32_t> tokens, const v1::GenerateRequest& request, int chunk,
             int64_t arrival_us)
      : tokens_(std::move(tokens)), chunk_(chunk) {
    request_id_ = request.request_id().empty() ? absl::StrCat("echo-", arrival_us)
                                               : request.request_id();
    prompt_len_ = request.prompt_tokens_size() > 0 ? request.prompt_tokens_size()
                                                   : request.prompt_len();
    timeline_.set_arrival_us(arrival_us);
    timeline_.set_scheduled_us(arrival_us);
    timeline_.set_prefill_start_us(arrival_us);
    timeline_.set_prefill_end_us(arrival_us);
    timeline_.set_prefill_worker("echo");
    timeline_.set_decode_worker("echo");
    timeline_.set_transfer_backend("none");
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "echo target: write failed"));
      return;
    }
    WriteNext();
  }

  void OnDone() override { delete this; }

 private:
  void WriteNext() {
    response_.Clear();
    response_.set_request_id(request_id_);
    response_.set_position(prompt_len_ + static_cast<int>(next_));
    if (next_ == 0) {
      response_.set_prompt_tokens(prompt_len_);
      timeline_.set_first_token_us(WallMicros());
    }
    const size_t end = std::min(tokens_.size(), next_ + chunk_);
    for (; next_ < end; ++next_) response_.add_tokens(tokens_[next_]);
    if (next_ < tokens_.size()) {
      StartWrite(&response_);
      return;
    }
    timeline_.set_finish_us(WallMicros());
    response_.set_finished(true);
    response_.set_finish_reason("length");
    *response_.mutable_timeline() = timeline_;
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }

  const std::vector<int32_t> tokens_;
  const size_t chunk_;
  size_t next_ = 0;
  std::string request_id_;
  int prompt_len_ = 0;
  v1::RequestTimeline timeline_;
  v1::GenerateResponse response_;
};

class FailedStream final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  explicit FailedStream(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<v1::GenerateResponse>* EchoTarget::Service::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  const int64_t arrival_us = WallMicros();
  const uint64_t ordinal = seen_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (options_.fail_every > 0 && ordinal % options_.fail_every == 0) {
    return new FailedStream(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "echo target: injected failure"));
  }
  if (request->max_tokens() <= 0) {
    return new FailedStream(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                         "echo target: max_tokens must be > 0"));
  }
  std::vector<int32_t> prompt(request->prompt_tokens().begin(), request->prompt_tokens().end());
  if (prompt.empty()) {
    prompt = model::SyntheticPrompt(request->seed(), request->prompt_len(), config_.vocab_size);
  }
  std::vector<int32_t> tokens;
  if (options_.reference_tokens) {
    tokens = model::ReferenceGenerate(prompt, request->max_tokens(), config_, request->seed());
  } else {
    tokens.resize(request->max_tokens());
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = static_cast<int32_t>((request->seed() + i) % config_.vocab_size);
    }
  }
  return new EchoStream(std::move(tokens), *request, std::max(1, options_.tokens_per_chunk),
                        arrival_us);
}

absl::StatusOr<std::unique_ptr<EchoTarget>> EchoTarget::Start(const EchoTargetOptions& options) {
  ModelOverrides model;
  model.preset = options.preset;
  model.block_size = options.block_size;
  model.dtype = options.dtype;
  auto config = ResolveModelConfig(model);
  if (!config.ok()) return config.status();
  std::unique_ptr<EchoTarget> target(new EchoTarget());
  target->service_ = std::make_unique<Service>(options, *std::move(config));
  target->host_ = options.host;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port),
                           grpc::InsecureServerCredentials(), &target->port_);
  builder.RegisterService(target->service_.get());
  target->server_ = builder.BuildAndStart();
  if (!target->server_ || target->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("echo target: cannot listen on ", options.host, ":", options.port));
  }
  return target;
}

EchoTarget::~EchoTarget() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
  }
}

std::string EchoTarget::address() const { return absl::StrCat(host_, ":", port_); }

uint64_t EchoTarget::requests_seen() const { return service_->requests_seen(); }

}  // namespace pdserve::loadgen
