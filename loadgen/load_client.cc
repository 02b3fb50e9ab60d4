#include "loadgen/load_client.h"

#include "absl/strings/str_cat.h"
#include "loadgen/grpc_client.h"
#include "loadgen/openai_client.h"

namespace pdserve::loadgen {

absl::StatusOr<ClientApi> ParseClientApi(std::string_view name) {
  if (name == "pdserve" || name == "grpc") return ClientApi::kPdserve;
  if (name == "openai") return ClientApi::kOpenAi;
  if (name == "openai-chat") return ClientApi::kOpenAiChat;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --backend '", std::string(name), "' (pdserve, openai, openai-chat)"));
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
