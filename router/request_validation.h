#pragma once

// Turns a client's request (the core's GenerateParams, or a gRPC GenerateRequest) into prompt
// tokens, or says precisely what is wrong with it. Every front end's requests pass here.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "pdserve.pb.h"
#include "router/request_core.h"

namespace pdserve::router {

// Longest request id a client may choose: ids travel to every worker and into their logs.
inline constexpr size_t kMaxRequestIdBytes = 256;

// InvalidArgument for: a request id longer than kMaxRequestIdBytes (named escaped and cut), no
// prompt or more than one kind of prompt, non-positive prompt_len or
// max_tokens, token ids outside the vocabulary, prompt + max_tokens beyond max_model_len, an
// unknown preset or one other than the cluster's.
absl::StatusOr<std::vector<int32_t>> PromptOf(const GenerateParams& request,
                                              const std::string& request_id,
                                              const ModelConfig& config);
absl::StatusOr<std::vector<int32_t>> PromptOf(const v1::GenerateRequest& request,
                                              const std::string& request_id,
                                              const ModelConfig& config);

// The core's view of a gRPC request, field by field (PromptOf checks it).
GenerateParams ParamsOf(const v1::GenerateRequest& request);

}  // namespace pdserve::router
