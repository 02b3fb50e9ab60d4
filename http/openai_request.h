#pragma once

// Reads an OpenAI-style completion or chat completion request body into the router core's
// GenerateParams. Only the HTTP-level shape is checked here (JSON, field types, the model name,
// options the mock cannot honour); what the core checks (prompt length against the context,
// max_tokens >= 1, token ids in the vocabulary) is left to the core, so the HTTP and gRPC front
// ends reject the same requests with the same messages.
//
// Errors: InvalidArgument (HTTP 400) for a body that is not a JSON object, nested deeper than
// kMaxJsonDepth, a field of the wrong type, a batch of prompts, n != 1, min_tokens out of
// range, stream_options without stream; NotFound (HTTP 404) for a model this cluster does not
// serve.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "router/request_core.h"

namespace pdserve::http {

inline constexpr int kMaxJsonDepth = 32;
// What OpenAI's API gives when max_tokens is absent from a completion request.
inline constexpr int kDefaultMaxTokens = 16;

enum class Endpoint { kCompletions, kChatCompletions };

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  router::GenerateParams params;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool return_token_ids = false;  // the pdserve extension: token ids and timeline
};

// The name clients use for the served model: the preset's name (e.g. "tiny").
std::string ServedModelName(const ModelConfig& config);

absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(Endpoint endpoint, std::string_view body,
                                                 const ModelConfig& config);

// How deep objects and arrays nest in `json` (strings skipped); counted before parsing so that
// a hostile body cannot drive the parser's recursion.
int JsonNestingDepth(std::string_view json);

}  // namespace pdserve::http
