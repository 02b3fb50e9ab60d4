#include "http/openai_response.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace pdserve::http {
namespace {

using nlohmann::json;

// Invalid UTF-8 (from a client's text echoed in a message) is replaced, never thrown on.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool IsChat(const OpenAiRequest& request) { return request.endpoint == Endpoint::kChatCompletions; }

json Usage(int prompt_tokens, int completion_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}};
}

json TimesJson(const router::RequestTimes& t) {
  return json{{"arrival_us", t.arrival_us},
              {"scheduled_us", t.scheduled_us},
              {"prefill_start_us", t.prefill_start_us},
              {"prefill_end_us", t.prefill_end_us},
              {"transfer_start_us", t.transfer_start_us},
              {"transfer_end_us", t.transfer_end_us},
              {"first_token_us", t.first_token_us},
              {"finish_us", t.finish_us},
              {"kv_bytes", t.kv_bytes},
              {"transfer_ops", t.transfer_ops},
              {"transfer_backend", t.transfer_backend},
              {"transports", t.transports},
              {"prefill_worker", t.prefill_worker},
              {"decode_worker", t.decode_worker},
              {"modelled_prefill_us", t.modelled_prefill_us},
              {"prefill_mock_cpu_us", t.prefill_mock_cpu_us},
              {"decode_join_us", t.decode_join_us},
              {"modelled_first_step_us", t.modelled_first_step_us},
              {"decode_verify_cpu_us", t.decode_verify_cpu_us},
              {"transfer_batches", t.transfer_batches},
              {"transfer_busy_us", t.transfer_busy_us},
              {"transfer_copy_wait_us", t.transfer_copy_wait_us},
              {"allocated_us", t.allocated_us},
              {"decode_admitted_us", t.decode_admitted_us},
              {"kv_landed_us", t.kv_landed_us},
              {"first_token_relayed_us", t.first_token_relayed_us}};
}

json ExtensionJson(const Extension& e) {
  json j{
      {"request_id", e.request_id}, {"token_ids", e.token_ids}, {"timeline", TimesJson(e.times)}};
  if (!e.prompt_token_ids.empty()) j["prompt_token_ids"] = e.prompt_token_ids;
  return j;
}

json Head(const OpenAiRequest& request, const ResponseHead& head, bool chunk) {
  const char* object =
      IsChat(request) ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return json{
      {"id", head.id}, {"object", object}, {"created", head.created}, {"model", head.model}};
}

// The exact model (what a gRPC client reads from GetStatus): a client that recomputes tokens
// (`pdserve loadgen --backend openai --verify`) needs the block size and dtype, not only a name.
json ModelSpecJson(const ModelConfig& config) {
  const ModelOverrides o = OverridesOf(config);
  return json{{"preset", o.preset},
              {"block_size", o.block_size},
              {"dtype", o.dtype},
              {"num_layers", o.num_layers},
              {"max_model_len", o.max_model_len}};
}

json FinishReason(const std::string& reason) {
  return reason.empty() ? json(nullptr) : json(reason);
}

}  // namespace

std::string TokenText(std::span<const int32_t> tokens, bool leading_space) {
  std::string text;
  for (int32_t t : tokens) {
    absl::StrAppend(&text, leading_space ? " " : "", t);
    leading_space = true;
  }
  return text;
}

std::string CompletionResponse(const OpenAiRequest& request, const ResponseHead& head,
                               std::span<const int32_t> tokens, int prompt_tokens,
                               const std::string& finish_reason, const Extension* extension) {
  json j = Head(request, head, /*chunk=*/false);
  json choice{{"index", 0},
              {"logprobs", nullptr},
              {"finish_reason", FinishReason(finish_reason)},
              {"stop_reason", nullptr}};
  if (IsChat(request)) {
    choice["message"] = json{{"role", "assistant"}, {"content", TokenText(tokens, false)}};
  } else {
    choice["text"] = TokenText(tokens, false);
  }
  j["choices"] = json::array({std::move(choice)});
  j["usage"] = Usage(prompt_tokens, static_cast<int>(tokens.size()));
  if (extension != nullptr) j["pdserve"] = ExtensionJson(*extension);
  return Dump(j);
}

std::string StreamChunk(const OpenAiRequest& request, const ResponseHead& head,
                        std::span<const int32_t> tokens, bool leading_space, bool first,
                        const std::string& finish_reason, const Extension* extension) {
  json j = Head(request, head, /*chunk=*/true);
  json choice{{"index", 0}, {"logprobs", nullptr}, {"finish_reason", FinishReason(finish_reason)}};
  if (IsChat(request)) {
    json delta{{"content", TokenText(tokens, leading_space)}};
    if (first) delta["role"] = "assistant";
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = TokenText(tokens, leading_space);
  }
  j["choices"] = json::array({std::move(choice)});
  if (request.include_usage) j["usage"] = nullptr;
  if (extension != nullptr) j["pdserve"] = ExtensionJson(*extension);
  return Dump(j);
}

std::string UsageChunk(const OpenAiRequest& request, const ResponseHead& head, int prompt_tokens,
                       int completion_tokens) {
  json j = Head(request, head, /*chunk=*/true);
  j["choices"] = json::array();
  j["usage"] = Usage(prompt_tokens, completion_tokens);
  return Dump(j);
}

absl::string_view ReasonPhrase(int http_status) {
  switch (http_status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Internal Server Error";
  }
}

std::string ErrorBody(int http_status, absl::string_view message) {
  std::string type;
  switch (http_status) {
    case 400:
      type = "BadRequestError";
      break;
    case 404:
      type = "NotFoundError";
      break;
    case 429:
      type = "RateLimitError";
      break;
    case 503:
      type = "ServiceUnavailableError";
      break;
    default:
      type = std::string(ReasonPhrase(http_status));
      std::erase(type, ' ');
      if (!type.ends_with("Error")) type += "Error";
  }
  return Dump(json{{"object", "error"},
                   {"message", std::string(message)},
                   {"type", type},
                   {"param", nullptr},
                   {"code", http_status}});
}

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kFailedPrecondition:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ModelList(const ModelConfig& config, int64_t created) {
  const std::string name = ServedModelName(config);
  return Dump(json{{"object", "list"},
                   {"data", json::array({json{{"id", name},
                                              {"object", "model"},
                                              {"created", created},
                                              {"owned_by", "pdserve"},
                                              {"root", name},
                                              {"parent", nullptr},
                                              {"max_model_len", config.max_model_len},
                                              {"pdserve", ModelSpecJson(config)}}})}});
}

}  // namespace pdserve::http
