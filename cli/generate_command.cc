#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "service/grpc_util.h"
#include "common/clock.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "common/synthetic_model.h"
#include "loadgen/target_model.h"
#include "pdserve.grpc.pb.h"

namespace pdserve::cli {
namespace {

struct GenerateFlags {
  std::string endpoint = "127.0.0.1:50051";
  int prompt_len = 0;
  std::string prompt;
  int max_tokens = 16;
  uint64_t seed = 0;
  std::string request_id;
  bool verify = false;
  double timeout_s = 600;
};

double Ms(int64_t from_us, int64_t to_us) {
  return from_us > 0 && to_us >= from_us ? (to_us - from_us) / 1000.0 : 0.0;
}

absl::Status RunGenerate(const GenerateFlags& f) {
  if (f.prompt.empty() && f.prompt_len <= 0) {
    return absl::InvalidArgumentError("give --prompt-len L (> 0) or --prompt \"text\"");
  }
  auto stub = v1::Router::NewStub(
      grpc::CreateChannel(f.endpoint, grpc::InsecureChannelCredentials()));
  v1::GenerateRequest request;
  request.set_request_id(f.request_id);
  if (!f.prompt.empty()) {
    request.set_prompt_text(f.prompt);
  } else {
    request.set_prompt_len(f.prompt_len);
  }
  request.set_max_tokens(f.max_tokens);
  request.set_seed(f.seed);
  grpc::ClientContext ctx;
  service::SetDeadline(ctx, absl::Seconds(f.timeout_s));
  const int64_t sent_us = WallMicros();
  auto reader = stub->Generate(&ctx, request);
  v1::GenerateResponse chunk;
  std::vector<int32_t> tokens;
  v1::RequestTimeline timeline;
  std::string id, finish_reason;
  int prompt_tokens = 0;
  int64_t first_chunk_us = 0;
  while (reader->Read(&chunk)) {
    if (id.empty()) {
      id = chunk.request_id();
      std::printf("request %s: ", id.c_str());
    }
    if (chunk.prompt_tokens() > 0) prompt_tokens = chunk.prompt_tokens();
    if (first_chunk_us == 0 && chunk.tokens_size() > 0) first_chunk_us = WallMicros();
    for (int32_t t : chunk.tokens()) {
      std::printf("%d ", t);
      tokens.push_back(t);
    }
    std::fflush(stdout);
    if (chunk.finished()) {
      timeline = chunk.timeline();
      finish_reason = chunk.finish_reason();
    }
  }
  const int64_t done_us = WallMicros();
  std::printf("\n");
  RETURN_IF_ERROR(service::FromGrpc(reader->Finish()));
  const v1::RequestTimeline& t = timeline;
  std::printf("%d tokens after a prompt of %d (finish: %s), served by %s -> %s\n",
              static_cast<int>(tokens.size()), prompt_tokens, finish_reason.c_str(),
              t.prefill_worker().c_str(), t.decode_worker().c_str());
  std::printf("  %-28s %10.3f ms\n", "queue (arrival -> scheduled)",
              Ms(t.arrival_us(), t.scheduled_us()));
  std::printf("  %-28s %10.3f ms\n", "prefill", Ms(t.prefill_start_us(), t.prefill_end_us()));
  std::printf("  %-28s %10.3f ms   %llu bytes, %u ops, %s\n", "KV transfer",
              Ms(t.transfer_start_us(), t.transfer_end_us()),
              static_cast<unsigned long long>(t.kv_bytes()), t.transfer_ops(),
              t.transfer_backend().c_str());
  std::printf("  %-28s %10.3f ms\n", "TTFT (server)", Ms(t.arrival_us(), t.first_token_us()));
  std::printf("  %-28s %10.3f ms\n", "E2E (server)", Ms(t.arrival_us(), t.finish_us()));
  if (tokens.size() > 1) {
    std::printf("  %-28s %10.3f ms\n", "TPOT (server)",
                Ms(t.first_token_us(), t.finish_us()) / static_cast<double>(tokens.size() - 1));
  }
  std::printf("  %-28s %10.3f ms (client, first token chunk)\n", "TTFT (client)",
              Ms(sent_us, first_chunk_us));
  std::printf("  %-28s %10.3f ms (client)\n", "E2E (client)", Ms(sent_us, done_us));
  if (f.verify) {
    // The cluster's own model: its tokens depend on dtype and block size, not only the preset.
    ASSIGN_OR_RETURN(ModelConfig config, loadgen::FetchTargetModel(*stub, absl::Seconds(10)));
    std::vector<int32_t> prompt = f.prompt.empty()
                                      ? model::SyntheticPrompt(f.seed, f.prompt_len,
                                                               config.vocab_size)
                                      : model::TokenizeText(f.prompt, config.vocab_size);
    if (model::ReferenceGenerate(prompt, f.max_tokens, config, f.seed) != tokens) {
      return absl::DataLossError(
          absl::StrCat("request ", id, ": tokens differ from reference_generate for model ",
                       ModelSummary(config)));
    }
    std::printf("verify: OK, tokens equal reference_generate (model %s, seed %llu)\n",
                ModelSummary(config).c_str(), static_cast<unsigned long long>(f.seed));
  }
  return absl::OkStatus();
}

void AddGenerateCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("generate", "Send one request to a router, print the tokens "
                                                 "as they stream and the request's timings");
  auto f = std::make_shared<GenerateFlags>();
  cmd->add_option("--endpoint", f->endpoint, "router host:port")->capture_default_str();
  cmd->add_option("--prompt-len", f->prompt_len, "synthetic prompt of this many tokens");
  cmd->add_option("--prompt", f->prompt, "prompt text (one token per word)");
  cmd->add_option("--max-tokens", f->max_tokens, "tokens to generate")->capture_default_str();
  cmd->add_option("--seed", f->seed, "seed of the synthetic prompt and token rule")
      ->capture_default_str();
  cmd->add_option("--request-id", f->request_id, "request id (default: the router assigns one)");
  cmd->add_flag("--verify", f->verify, "check the tokens against reference_generate");
  cmd->add_option("--timeout-s", f->timeout_s, "deadline of the request")->capture_default_str();
  cmd->callback([f] { ExitWith(RunGenerate(*f)); });
}

const bool registered = RegisterCommand("generate", AddGenerateCommand);

}  // namespace
}  // namespace pdserve::cli
