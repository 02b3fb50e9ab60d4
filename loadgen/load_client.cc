#include "loadgen/load_client.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "loadgen/grpc_client.h"
#include "loadgen/openai_client.h"

namespace pdserve::loadgen {

absl::StatusOr<ClientApi> ParseClientApi(std::string_view name) {
  if (name == "pdserve" || name == "grpc") return ClientApi::kPdserve;
  if (name == "openai" || name == "vllm") return ClientApi::kOpenAi;
  if (name == "openai-chat") return ClientApi::kOpenAiChat;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown --backend '", std::string(name),
      "': pdserve loadgen speaks pdserve (gRPC), openai / vllm (/v1/completions) and "
      "openai-chat (/v1/chat/completions); vllm bench serve's other backends (tgi, sglang, "
      "openai-audio, embeddings, ...) are not supported"));
}

absl::StatusOr<std::vector<std::string>> ParsePercentileMetrics(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    bool known = false;
    for (const char* name : kPercentileMetrics) known = known || item == name;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown --percentile-metrics entry '", item, "' (",
                       absl::StrJoin(kPercentileMetrics, ", "), ")"));
    }
    if (std::find(out.begin(), out.end(), item) == out.end()) out.emplace_back(item);
  }
  if (out.empty()) return absl::InvalidArgumentError("--percentile-metrics names no metric");
  return out;
}

std::string ClientApiName(ClientApi api) {
  switch (api) {
    case ClientApi::kOpenAi:
      return "openai";
    case ClientApi::kOpenAiChat:
      return "openai-chat";
    case ClientApi::kPdserve:
      break;
  }
  return "pdserve";
}

absl::StatusOr<std::unique_ptr<LoadClient>> ConnectLoadClient(const LoadOptions& options) {
  if (options.api == ClientApi::kPdserve) return ConnectGrpcClient(options);
  return ConnectOpenAiClient(options);
}

std::string TargetName(const LoadOptions& options) {
  return options.api == ClientApi::kPdserve ? options.target : options.base_url;
}

}  // namespace pdserve::loadgen
