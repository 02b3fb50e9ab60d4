#include "loadgen/openai_client.h"

#include "absl/strings/str_cat.h"
#include "common/synthetic_model.h"
#include "loadgen/http_stream_call.h"
#include "loadgen/http_transport.h"
#include "nlohmann/json.hpp"

namespace pdserve::loadgen {
namespace {

using nlohmann::json;

class OpenAiLoadClient final : public LoadClient {
 public:
  OpenAiLoadClient(const LoadOptions& options, HttpEndpoint endpoint,
                   std::unique_ptr<HttpTransport> transport)
      : chat_(options.api == ClientApi::kOpenAiChat),
        path_(!options.endpoint.empty() ? options.endpoint
              : chat_                   ? "/v1/chat/completions"
                                        : "/v1/completions"),
        requested_model_(options.model_id),
        endpoint_(std::move(endpoint)),
        transport_(std::move(transport)) {}

  absl::StatusOr<ModelConfig> FetchModel(absl::Duration timeout) override {
    absl::StatusOr<HttpReply> reply = HttpFetch(endpoint_, "GET", "/v1/models", "", timeout);
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) {
      return absl::UnavailableError(
          absl::StrCat("GET /v1/models answered HTTP ", reply->status, ": ", reply->body));
    }
    absl::StatusOr<ListedModel> listed = ReadModelList(reply->body);
    if (!listed.ok()) return listed.status();
    served_model_ = listed->id;
    // `--model`, as vllm bench serve sends it: a server that does not serve it would answer
    // every request 404, so the run stops here, before sending, as the gRPC client does for a
    // preset the router does not serve.
    if (!requested_model_.empty() && requested_model_ != served_model_) {
      return absl::FailedPreconditionError(
          absl::StrCat("--model '", requested_model_, "': ", endpoint_.host, ":", endpoint_.port,
                       " serves model '", served_model_, "' (GET /v1/models)"));
    }
    return listed->config;
  }

  absl::Status Prepare(std::vector<RequestSpec>& specs, const std::string& id_prefix,
                       const ModelConfig& model, bool /*name_preset*/) override {
    // The model name is what /v1/models listed (or the preset's when it listed none): a
    // server serving another model answers 404, as a gRPC router refuses another preset.
    const std::string name = served_model_.empty() ? model.name : served_model_;
    requests_.clear();
    ids_.clear();
    calls_.clear();
    calls_.resize(specs.size());
    for (RequestSpec& spec : specs) {
      json body{{"model", name},
                {"max_tokens", spec.output_len},
                {"ignore_eos", true},
                {"stream", true},
                {"stream_options", {{"include_usage", true}}},
                {"seed", spec.seed},
                {"return_token_ids", true}};
      if (chat_) {
        const std::string text = ChatText(spec.prompt);
        spec.prompt = ChatPromptIds(text, model.vocab_size);
        body["messages"] = json::array({json{{"role", "user"}, {"content", text}}});
      } else {
        body["prompt"] = spec.prompt;
      }
      requests_.push_back(StreamingPost(endpoint_, path_, body.dump()));
      ids_.push_back(absl::StrCat(id_prefix, spec.index));
    }
    return absl::OkStatus();
  }

  std::string RequestId(int i) const override { return ids_[i]; }

  void Send(int i, RequestRecord* record, CallTracker* tracker, int64_t t0_ns,
            double timeout_s) override {
    calls_[i] = std::make_unique<HttpStreamCall>(transport_.get(), &requests_[i], chat_, timeout_s,
                                                 record, tracker, t0_ns);
    calls_[i]->Start();
  }

  void EndPhase() override { calls_.clear(); }

 private:
  const bool chat_;
  const std::string path_;
  const std::string requested_model_;  // --model; empty: whatever /v1/models lists
  const HttpEndpoint endpoint_;
  std::unique_ptr<HttpTransport> transport_;
  std::string served_model_;
  std::vector<std::string> requests_;
  std::vector<std::string> ids_;
  std::vector<std::unique_ptr<HttpStreamCall>> calls_;
};

}  // namespace

absl::StatusOr<ListedModel> ReadModelList(std::string_view body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("data") || !j["data"].is_array() ||
      j["data"].empty() || !j["data"][0].is_object() || !j["data"][0].contains("id") ||
      !j["data"][0]["id"].is_string()) {
    return absl::InvalidArgumentError("GET /v1/models: not a model list");
  }
  const json& m = j["data"][0];
  ListedModel out{.id = m["id"].get<std::string>()};
  auto spec = m.find("pdserve");
  if (spec == m.end() || !spec->is_object()) {
    out.config = absl::FailedPreconditionError(
        absl::StrCat("GET /v1/models lists model '", out.id, "' without pdserve's model spec"));
    return out;
  }
  ModelOverrides o;
  o.preset = spec->value("preset", std::string());
  o.block_size = spec->value("block_size", 0);
  o.dtype = spec->value("dtype", std::string());
  o.num_layers = spec->value("num_layers", 0);
  o.max_model_len = spec->value("max_model_len", 0);
  out.config = ResolveModelConfig(o);
  if (!out.config.ok()) {
    out.config = absl::InvalidArgumentError(
        absl::StrCat("the target reports an invalid model: ", out.config.status().message()));
  }
  return out;
}

std::string ChatText(const std::vector<int32_t>& prompt) {
  std::string text;
  for (size_t i = 1; i < prompt.size(); ++i) absl::StrAppend(&text, i > 1 ? " " : "", prompt[i]);
  return text;
}

std::vector<int32_t> ChatPromptIds(const std::string& text, int32_t vocab_size) {
  return model::TokenizeText(absl::StrCat("user: ", text, "\n"), vocab_size);
}

absl::StatusOr<std::unique_ptr<LoadClient>> ConnectOpenAiClient(const LoadOptions& options) {
  absl::StatusOr<HttpEndpoint> endpoint = ParseBaseUrl(options.base_url);
  if (!endpoint.ok()) return endpoint.status();
  // Reachable before anything else, as the gRPC client waits for its channels.
  absl::StatusOr<HttpReply> probe =
      HttpFetch(*endpoint, "GET", "/v1/models", "", absl::Seconds(options.connect_timeout_s));
  if (!probe.ok()) {
    return absl::Status(probe.status().code(), absl::StrCat("loadgen: ", probe.status().message()));
  }
  absl::StatusOr<std::unique_ptr<HttpTransport>> transport =
      HttpTransport::Start(*endpoint, options.http_io_threads);
  if (!transport.ok()) return transport.status();
  return std::make_unique<OpenAiLoadClient>(options, *std::move(endpoint), *std::move(transport));
}

}  // namespace pdserve::loadgen
