#include "http/openai_request.h"

#include <algorithm>

#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace pdserve::http {
namespace {

using nlohmann::json;

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

// An optional integer field that must fit in int32; absent: `fallback`.
absl::StatusOr<int32_t> Int32Field(const json& body, const char* name, int32_t fallback) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) return Invalid(absl::StrCat("'", name, "' must be an integer"));
  const int64_t v = it->get<int64_t>();
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
    return Invalid(absl::StrCat("'", name, "' is out of range: ", v));
  }
  return static_cast<int32_t>(v);
}

absl::StatusOr<bool> BoolField(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return false;
  if (!it->is_boolean()) return Invalid(absl::StrCat("'", name, "' must be a boolean"));
  return it->get<bool>();
}

// prompt: one string, or one list of token ids. Batches (a list of strings or of lists) would
// need one response per prompt, which this front end does not give.
absl::Status ReadPrompt(const json& body, router::GenerateParams& params) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return Invalid("'prompt' is required");
  if (it->is_string()) {
    params.prompt_text = it->get<std::string>();
    if (params.prompt_text.empty()) return Invalid("'prompt' is empty");
    return absl::OkStatus();
  }
  if (!it->is_array() || it->empty()) {
    return Invalid("'prompt' must be a string or a non-empty list of token ids");
  }
  params.prompt_tokens.reserve(it->size());
  for (const json& t : *it) {
    if (!t.is_number_integer()) {
      return Invalid("'prompt' as a list must hold token ids (batched prompts are not supported)");
    }
    const int64_t v = t.get<int64_t>();
    if (v < 0 || v > std::numeric_limits<int32_t>::max()) {
      return Invalid(absl::StrCat("token id ", v, " in 'prompt' is out of range"));
    }
    params.prompt_tokens.push_back(static_cast<int32_t>(v));
  }
  return absl::OkStatus();
}

// messages: the chat is flattened to "role: content" lines for the synthetic tokenizer.
absl::Status ReadMessages(const json& body, router::GenerateParams& params) {
  auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty()) {
    return Invalid("'messages' must be a non-empty list");
  }
  for (const json& m : *it) {
    if (!m.is_object()) return Invalid("each message must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return Invalid("each message needs a 'role'");
    std::string text;
    auto content = m.find("content");
    if (content != m.end() && content->is_string()) {
      text = content->get<std::string>();
    } else if (content != m.end() && content->is_array()) {
      for (const json& part : *content) {  // [{"type": "text", "text": ...}]
        auto t = part.is_object() ? part.find("text") : part.end();
        if (!part.is_object() || t == part.end() || !t->is_string()) {
          return Invalid("message content parts must be {\"type\": \"text\", \"text\": ...}");
        }
        absl::StrAppend(&text, text.empty() ? "" : " ", t->get<std::string>());
      }
    } else if (content != m.end() && !content->is_null()) {
      return Invalid("message 'content' must be a string or a list of text parts");
    }
    absl::StrAppend(&params.prompt_text, role->get<std::string>(), ": ", text, "\n");
  }
  return absl::OkStatus();
}

absl::Status ReadOptions(const json& body, OpenAiRequest& out) {
  for (const char* ignored : {"temperature", "top_p"}) {  // the synthetic model decides
    auto it = body.find(ignored);
    if (it != body.end() && !it->is_null() && !it->is_number()) {
      return Invalid(absl::StrCat("'", ignored, "' must be a number"));
    }
  }
  absl::StatusOr<int32_t> n = Int32Field(body, "n", 1);
  if (!n.ok()) return n.status();
  if (*n != 1) return Invalid(absl::StrCat("n = ", *n, " is not supported: only n = 1"));
  absl::StatusOr<bool> stream = BoolField(body, "stream");
  if (!stream.ok()) return stream.status();
  out.stream = *stream;
  if (auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
    if (!out.stream) return Invalid("stream_options can only be given when stream is true");
    if (!so->is_object()) return Invalid("'stream_options' must be an object");
    absl::StatusOr<bool> usage = BoolField(*so, "include_usage");
    if (!usage.ok()) return usage.status();
    out.include_usage = *usage;
  }
  absl::StatusOr<bool> ids = BoolField(body, "return_token_ids");
  if (!ids.ok()) return ids.status();
  out.return_token_ids = *ids;
  absl::StatusOr<bool> ignore_eos = BoolField(body, "ignore_eos");
  if (!ignore_eos.ok()) return ignore_eos.status();
  out.params.ignore_eos = *ignore_eos;
  if (auto seed = body.find("seed"); seed != body.end() && !seed->is_null()) {
    if (!seed->is_number_integer()) return Invalid("'seed' must be an integer");
    out.params.seed = seed->is_number_unsigned() ? seed->get<uint64_t>()
                                                 : static_cast<uint64_t>(seed->get<int64_t>());
  }
  return absl::OkStatus();
}

// max_completion_tokens (the chat API's newer name) wins over max_tokens; min_tokens is
// honoured trivially (the mock has no EOS and always generates max_tokens) but checked.
absl::Status ReadLengths(const json& body, router::GenerateParams& params) {
  absl::StatusOr<int32_t> max_tokens = Int32Field(body, "max_tokens", kDefaultMaxTokens);
  if (!max_tokens.ok()) return max_tokens.status();
  absl::StatusOr<int32_t> max_completion = Int32Field(body, "max_completion_tokens", *max_tokens);
  if (!max_completion.ok()) return max_completion.status();
  params.max_tokens = *max_completion;
  absl::StatusOr<int32_t> min_tokens = Int32Field(body, "min_tokens", 0);
  if (!min_tokens.ok()) return min_tokens.status();
  if (*min_tokens < 0 || (params.max_tokens > 0 && *min_tokens > params.max_tokens)) {
    return Invalid(absl::StrCat("min_tokens (", *min_tokens,
                                ") must be in [0, max_tokens = ", params.max_tokens, "]"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ServedModelName(const ModelConfig& config) { return config.name; }

int JsonNestingDepth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '{' || c == '[') deepest = std::max(deepest, ++depth);
    if (c == '}' || c == ']') --depth;
  }
  return deepest;
}

absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(Endpoint endpoint, std::string_view body,
                                                 const ModelConfig& config) {
  if (JsonNestingDepth(body) > kMaxJsonDepth) {
    return Invalid(absl::StrCat("the JSON body nests deeper than ", kMaxJsonDepth, " levels"));
  }
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Invalid("the body is not valid JSON");
  if (!parsed.is_object()) return Invalid("the body must be a JSON object");
  OpenAiRequest out;
  out.endpoint = endpoint;
  if (auto model = parsed.find("model"); model != parsed.end() && !model->is_null()) {
    if (!model->is_string()) return Invalid("'model' must be a string");
    if (model->get<std::string>() != ServedModelName(config)) {
      return absl::NotFoundError(
          absl::StrCat("The model `", model->get<std::string>(), "` does not exist."));
    }
  }
  out.params.preset = config.name;
  absl::Status read = endpoint == Endpoint::kCompletions ? ReadPrompt(parsed, out.params)
                                                         : ReadMessages(parsed, out.params);
  if (read.ok()) read = ReadLengths(parsed, out.params);
  if (read.ok()) read = ReadOptions(parsed, out);
  if (!read.ok()) return read;
  return out;
}

}  // namespace pdserve::http
