#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "loadgen/load_client.h"

namespace pdserve::loadgen {

// An OpenAI-compatible server over HTTP/1.1 (`--backend openai` / `openai-chat`), as `vllm bench
// serve` drives one: streamed completions with "stream_options": {"include_usage": true},
// "ignore_eos": true and the request's seed; completions send the prompt as token ids, chat
// sends them as text. Every request asks for pdserve's extension ("return_token_ids": true),
// whose token ids make the output exact and --verify possible.
//
// The model comes from GET /v1/models: the first model's id is the name requests use, and its
// "pdserve" object (preset, block_size, dtype, num_layers, max_model_len) the exact model. A
// server without that object (any other OpenAI server) gives FailedPrecondition there; the run
// then falls back to --preset, and --verify is refused.
absl::StatusOr<std::unique_ptr<LoadClient>> ConnectOpenAiClient(const LoadOptions& options);

// GET /v1/models' first entry: its id, and the exact model when it carries pdserve's spec
// (FailedPrecondition when it does not, InvalidArgument when the spec does not resolve).
struct ListedModel {
  std::string id;
  absl::StatusOr<ModelConfig> config = absl::UnknownError("not read");
};
// InvalidArgument for a body that is not a model list.
absl::StatusOr<ListedModel> ReadModelList(std::string_view body);

// The text a chat request carries for `prompt`, and the ids pdserve's tokenizer makes of the
// message it becomes ("user: <text>\n", http/openai_request.cc): the "user:" word is the first
// token, so the text holds prompt.size() - 1 words.
std::string ChatText(const std::vector<int32_t>& prompt);
std::vector<int32_t> ChatPromptIds(const std::string& text, int32_t vocab_size);

}  // namespace pdserve::loadgen
