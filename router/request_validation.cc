#include "router/request_validation.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/synthetic_model.h"

namespace pdserve::router {

GenerateParams ParamsOf(const v1::GenerateRequest& request) {
  return GenerateParams{
      .request_id = request.request_id(),
      .prompt_tokens = {request.prompt_tokens().begin(), request.prompt_tokens().end()},
      .prompt_text = request.prompt_text(),
      .prompt_len = request.prompt_len(),
      .max_tokens = request.max_tokens(),
      .seed = request.seed(),
      .preset = request.preset(),
      .ignore_eos = request.ignore_eos()};
}

absl::StatusOr<std::vector<int32_t>> PromptOf(const v1::GenerateRequest& request,
                                              const std::string& id, const ModelConfig& config) {
  return PromptOf(ParamsOf(request), id, config);
}

absl::StatusOr<std::vector<int32_t>> PromptOf(const GenerateParams& request,
                                              const std::string& id, const ModelConfig& config) {
  if (id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request '", absl::CEscape(id.substr(0, 32)), "...': a request id of ", id.size(),
        " bytes (at most ", kMaxRequestIdBytes, ")"));
  }
  auto invalid = [&id](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("request ", id, ": ", parts...));
  };
  if (!request.preset.empty() && request.preset != config.name) {
    const std::vector<std::string> known = PresetNames();
    if (std::find(known.begin(), known.end(), request.preset) == known.end()) {
      return invalid("unknown preset '", request.preset, "' (expected one of ",
                     absl::StrJoin(known, ", "), ")");
    }
    return invalid("preset '", request.preset, "' requested but this cluster serves '",
                   config.name, "'");
  }
  if (request.max_tokens <= 0) {
    return invalid("max_tokens must be positive, got ", request.max_tokens);
  }
  const int kinds = (!request.prompt_tokens.empty()) + (!request.prompt_text.empty()) +
                    (request.prompt_len != 0);
  if (kinds == 0) return invalid("empty prompt: give prompt_tokens, prompt_text or prompt_len");
  if (kinds > 1) return invalid("give only one of prompt_tokens, prompt_text and prompt_len");
  std::vector<int32_t> prompt;
  if (request.prompt_len != 0) {
    if (request.prompt_len < 0) return invalid("prompt_len must be positive, got ",
                                                 request.prompt_len);
    if (request.prompt_len > config.max_model_len) {
      return invalid("prompt_len ", request.prompt_len, " exceeds max_model_len ",
                     config.max_model_len);
    }
    prompt = model::SyntheticPrompt(request.seed, request.prompt_len, config.vocab_size);
  } else if (!request.prompt_text.empty()) {
    prompt = model::TokenizeText(request.prompt_text, config.vocab_size);
    if (prompt.empty()) return invalid("prompt_text has no words");
  } else {
    prompt.assign(request.prompt_tokens.begin(), request.prompt_tokens.end());
    for (int32_t t : prompt) {
      if (t < 0 || t >= config.vocab_size) {
        return invalid("token ", t, " is outside the vocabulary [0, ", config.vocab_size, ")");
      }
    }
  }
  const int64_t total = static_cast<int64_t>(prompt.size()) + request.max_tokens;
  if (total > config.max_model_len) {
    return invalid("prompt of ", prompt.size(), " tokens + max_tokens ", request.max_tokens,
                   " = ", total, " exceeds max_model_len ", config.max_model_len);
  }
  return prompt;
}

}  // namespace pdserve::router
