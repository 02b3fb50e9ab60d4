#pragma once

// A small Router client for end-to-end tests: one Generate call, its tokens, its final status
// and timeline, plus the expected tokens from the synthetic model.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "common/model_config.h"
#include "common/synthetic_model.h"
#include "pdserve.grpc.pb.h"

namespace pdserve::e2e {

struct Outcome {
  grpc::Status status;
  std::string request_id;  // as the router named it in its responses
  std::vector<int32_t> tokens;
  v1::RequestTimeline timeline;
  int64_t finished_at_ns = 0;  // monotonic, when the stream ended
};

class Client {
 public:
  explicit Client(const std::string& endpoint)
      : stub_(v1::Router::NewStub(
            grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()))) {}

  // Runs one request to the end; `on_first_token` runs once when the first tokens arrive.
  Outcome Generate(const v1::GenerateRequest& request,
                   const std::function<void()>& on_first_token = nullptr,
                   absl::Duration timeout = absl::Seconds(120)) {
    Outcome out;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    auto reader = stub_->Generate(&ctx, request);
    v1::GenerateResponse chunk;
    while (reader->Read(&chunk)) {
      const bool first = out.tokens.empty() && chunk.tokens_size() > 0;
      out.tokens.insert(out.tokens.end(), chunk.tokens().begin(), chunk.tokens().end());
      if (first && on_first_token) on_first_token();
      if (out.request_id.empty()) out.request_id = chunk.request_id();
      if (chunk.finished()) out.timeline = chunk.timeline();
    }
    out.status = reader->Finish();
    out.finished_at_ns = MonotonicNanos();
    return out;
  }

  Outcome Generate(const std::string& id, int prompt_len, int max_tokens, uint64_t seed) {
    return Generate(Request(id, prompt_len, max_tokens, seed));
  }

  static v1::GenerateRequest Request(const std::string& id, int prompt_len, int max_tokens,
                                     uint64_t seed) {
    v1::GenerateRequest r;
    r.set_request_id(id);
    r.set_prompt_len(prompt_len);
    r.set_max_tokens(max_tokens);
    r.set_seed(seed);
    return r;
  }

  absl::StatusOr<v1::ClusterStatus> Status() {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::ClusterStatus status;
    grpc::Status s = stub_->GetStatus(&ctx, v1::StatusRequest(), &status);
    if (!s.ok()) return absl::UnavailableError(s.error_message());
    return status;
  }

 private:
  std::unique_ptr<v1::Router::Stub> stub_;
};

inline std::vector<int32_t> Expected(int prompt_len, int max_tokens, uint64_t seed,
                                     const ModelConfig& config) {
  return model::ReferenceGenerate(model::SyntheticPrompt(seed, prompt_len, config.vocab_size),
                                  max_tokens, config, seed);
}

inline std::vector<int32_t> Expected(int prompt_len, int max_tokens, uint64_t seed,
                                     const std::string& preset = "tiny") {
  return Expected(prompt_len, max_tokens, seed, *PresetConfig(preset));
}

}  // namespace pdserve::e2e
