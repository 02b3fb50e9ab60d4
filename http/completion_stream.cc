#include "http/completion_stream.h"

#include <algorithm>
#include <span>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "http/http_wire.h"
#include "http/openai_response.h"

namespace pdserve::http {
namespace {

// Receives the core's events: writes them as SSE chunks when streaming, keeps the tokens
// otherwise. Owned by the core while the request runs; called on its threads, one at a time.
class CompletionSink final : public router::EventSink {
 public:
  CompletionSink(OpenAiRequest request, ResponseHead head,
                 std::shared_ptr<ResponseChannel> channel, bool keep_alive)
      : request_(std::move(request)),
        head_(std::move(head)),
        channel_(std::move(channel)),
        keep_alive_(keep_alive) {}

  bool OnEvent(const router::TokenEvent& event) override {
    if (event.first) {
      prompt_tokens_ = event.prompt_tokens;
      head_.id = ResponseId(request_.endpoint, event.request_id);
      request_id_ = event.request_id;
    }
    const bool leading_space = !tokens_.empty();
    tokens_.insert(tokens_.end(), event.tokens.begin(), event.tokens.end());
    if (event.finished) {
      finish_reason_ = event.finish_reason;
      times_ = event.times;
    }
    if (!request_.stream) return !gone_;
    std::string bytes;
    if (!head_sent_) {
      bytes = EventStreamHead(keep_alive_);
      head_sent_ = true;
    }
    // One SSE chunk per token, as vLLM streams (one token per engine step), so that clients
    // that count chunks as tokens (vllm bench serve's ITL) see every token. Tokens that came
    // in one decode message go out in one write: their chunks carry the same arrival time.
    const Extension extension = event.finished ? MakeExtension() : Extension{};
    const size_t n = std::max<size_t>(event.tokens.size(), 1);  // a final event may be empty
    for (size_t i = 0; i < n; ++i) {
      const bool last = i + 1 == n;
      const std::span<const int32_t> token =
          event.tokens.empty() ? std::span<const int32_t>() : std::span(event.tokens).subspan(i, 1);
      bytes += EventChunk(StreamChunk(
          request_, head_, token, leading_space || i > 0, event.first && i == 0,
          event.finished && last ? finish_reason_ : std::string(),
          event.finished && last && request_.return_token_ids ? &extension : nullptr));
    }
    return Send(std::move(bytes));
  }

  void OnDone(const absl::Status& status) override { channel_->End(Finish(status)); }

 private:
  bool Send(std::string bytes) {
    if (!gone_ && !channel_->Send(std::move(bytes))) gone_ = true;
    return !gone_;
  }

  // The rest of the response. Returns whether it was queued whole.
  bool Finish(const absl::Status& status) {
    if (!head_sent_ && !status.ok()) {
      const int code = HttpStatusOf(status);
      return Send(
          WholeResponse(code, "application/json", ErrorBody(code, status.message()), keep_alive_));
    }
    if (!request_.stream) {
      const Extension extension = MakeExtension();
      const std::string body =
          CompletionResponse(request_, head_, tokens_, prompt_tokens_, finish_reason_,
                             request_.return_token_ids ? &extension : nullptr);
      return Send(WholeResponse(200, "application/json", body, keep_alive_));
    }
    std::string bytes;
    if (!status.ok()) {
      const int code = HttpStatusOf(status);
      bytes += EventChunk(absl::StrCat(R"({"error":)", ErrorBody(code, status.message()), "}"));
    } else if (request_.include_usage) {
      bytes +=
          EventChunk(UsageChunk(request_, head_, prompt_tokens_, static_cast<int>(tokens_.size())));
    }
    bytes += EventChunk("[DONE]");
    absl::StrAppend(&bytes, kLastChunk);
    return Send(std::move(bytes)) && status.ok();
  }

  Extension MakeExtension() const {
    return Extension{.request_id = request_id_,
                     .prompt_token_ids = request_.params.prompt_tokens,
                     .token_ids = tokens_,
                     .times = times_};
  }

  const OpenAiRequest request_;
  ResponseHead head_;
  std::string request_id_;  // the core's
  const std::shared_ptr<ResponseChannel> channel_;
  const bool keep_alive_;
  bool gone_ = false;  // a Send failed: nothing more is written
  bool head_sent_ = false;
  int prompt_tokens_ = 0;
  std::vector<int32_t> tokens_;
  std::string finish_reason_;
  router::RequestTimes times_;
};

}  // namespace

std::string ResponseId(Endpoint endpoint, absl::string_view request_id) {
  absl::ConsumePrefix(&request_id, "cmpl-");  // the core's own ids carry it already
  return absl::StrCat(endpoint == Endpoint::kChatCompletions ? "chatcmpl-" : "cmpl-", request_id);
}

std::shared_ptr<router::Call> StartCompletion(router::RequestCore& core, OpenAiRequest request,
                                              std::shared_ptr<ResponseChannel> channel,
                                              bool keep_alive) {
  // The core chooses the request id (the server's own, as for a gRPC request without one).
  request.params.request_id.clear();
  ResponseHead head{.created = absl::ToUnixSeconds(absl::Now()),
                    .model = ServedModelName(core.State().model)};
  const router::GenerateParams params = request.params;
  return core.Start(params, std::make_shared<CompletionSink>(std::move(request), std::move(head),
                                                             std::move(channel), keep_alive));
}

}  // namespace pdserve::http
