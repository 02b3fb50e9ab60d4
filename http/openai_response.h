#pragma once

// The JSON the OpenAI-compatible API answers with, in the shapes vLLM's server uses: whole
// responses, SSE chunks, the usage chunk, errors, the model list. Pure functions of their
// inputs (no I/O), so the shapes are tested without a server.
//
// Text out: the synthetic model has no vocabulary of words, so a token is written as its id in
// decimal and tokens are separated by one space (as loadgen's generated_texts): the text is
// reproducible and a client can read the ids back from it.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/model_config.h"
#include "http/openai_request.h"
#include "router/request_core.h"

namespace pdserve::http {

// The text of `tokens`; `leading_space` when earlier tokens of the same output came before.
std::string TokenText(std::span<const int32_t> tokens, bool leading_space);

// Names one request's answer: id, creation time, the model name it reports.
struct ResponseHead {
  std::string id;       // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// The pdserve extension ("pdserve": {...}): request id, prompt and output token ids, timeline.
struct Extension {
  std::string request_id;
  std::vector<int32_t> prompt_token_ids;  // empty: the prompt was text (its ids are not known here)
  std::vector<int32_t> token_ids;
  router::RequestTimes times;
};

// The whole non-streaming response.
std::string CompletionResponse(const OpenAiRequest& request, const ResponseHead& head,
                               std::span<const int32_t> tokens, int prompt_tokens,
                               const std::string& finish_reason, const Extension* extension);

// One streaming chunk carrying `tokens` (the chat API's first chunk also carries the role);
// finish_reason empty: null. `extension` on the last token chunk when asked for.
std::string StreamChunk(const OpenAiRequest& request, const ResponseHead& head,
                        std::span<const int32_t> tokens, bool leading_space, bool first,
                        const std::string& finish_reason, const Extension* extension);

// The final usage chunk of a stream ("choices": [] and "usage").
std::string UsageChunk(const OpenAiRequest& request, const ResponseHead& head, int prompt_tokens,
                       int completion_tokens);

// {"object": "error", "message", "type", "param": null, "code"} as vLLM answers.
std::string ErrorBody(int http_status, absl::string_view message);
// The HTTP status of a core or parse failure (400, 404, 429, 503, 504, 500).
int HttpStatusOf(const absl::Status& status);
absl::string_view ReasonPhrase(int http_status);

// The model list; its entry carries pdserve's model spec ("pdserve": {preset, block_size,
// dtype, num_layers, max_model_len}), so that clients recompute tokens with the served model.
std::string ModelList(const ModelConfig& config, int64_t created);

}  // namespace pdserve::http
