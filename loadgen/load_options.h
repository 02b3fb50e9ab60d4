#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "loadgen/arrival_schedule.h"
#include "loadgen/metrics.h"
#include "loadgen/workload.h"

namespace pdserve::loadgen {

enum class DatasetKind { kRandom, kTrace, kShareGpt };
enum class ProgressMode { kAuto, kOn, kOff };  // kAuto: a live line only when stderr is a tty

// The API the load speaks (vllm bench serve's --backend picks it the same way): pdserve's gRPC
// Router.Generate, or OpenAI's streamed completions / chat completions over HTTP.
enum class ClientApi { kPdserve, kOpenAi, kOpenAiChat };

// "pdserve" (or "grpc"), "openai", "openai-chat", and vllm's "vllm" (its name for the same
// streamed /v1/completions client as "openai").
absl::StatusOr<ClientApi> ParseClientApi(std::string_view name);
std::string ClientApiName(ClientApi api);

// The metrics `vllm bench serve --percentile-metrics` can select: each selected one gets its
// mean_/median_/std_/p<P>_<metric>_ms fields and its table section, the others none.
// client_queue_time (send - release by the schedule: the wait for a --max-concurrency slot) and
// e2el_including_client_queue are reported only under --max-concurrency, the latter only at a
// finite rate, as vllm does.
inline constexpr const char* kPercentileMetrics[] = {
    "ttft", "tpot", "itl", "e2el", "client_queue_time", "e2el_including_client_queue"};
// Parses "ttft,tpot,itl" (comma separated, each one of kPercentileMetrics).
absl::StatusOr<std::vector<std::string>> ParsePercentileMetrics(const std::string& text);

// Everything one load run needs. Defaults follow `vllm bench serve` where it has the same knob.
struct LoadOptions {
  ClientApi api = ClientApi::kPdserve;
  std::string target = "127.0.0.1:8000";  // host:port serving pdserve.v1.Router/Generate
  std::string base_url;     // http://HOST:PORT of the OpenAI-compatible API (api openai*)
  std::string endpoint;     // empty: /v1/completions, or /v1/chat/completions for openai-chat
  int http_io_threads = 1;  // io threads of the HTTP client (every socket; no thread per request)
  int num_prompts = 1000;
  int num_warmups = 0;      // sent and awaited before the measured run; not in the results
  int max_concurrency = 0;  // 0: unlimited
  uint64_t seed = 0;        // schedule, lengths and prompts
  ArrivalOptions arrival;   // ignored for traces (their own times are replayed)

  DatasetKind dataset = DatasetKind::kRandom;
  RandomWorkloadOptions random;
  std::string trace_path;  // JSONL for kTrace; the ShareGPT JSON for kShareGpt
  int sharegpt_output_len = 0;  // kShareGpt: > 0 fixes every output length

  // The model (vocabulary of prompts, oracle of --verify) is the one the target reports in
  // GetStatus, block size and dtype included. `preset`, when set, must be the target's preset;
  // it is the model only for a target that does not report one (not with --verify).
  std::string preset;
  bool verify = false;          // compare every token with model::ReferenceGenerate
  bool save_token_ids = false;  // records keep their prompt ids; the JSON holds prompt and
                                // output ids, seeds and max_tokens (`pdserve loadgen verify`)

  std::vector<double> percentiles = {50, 90, 95, 99};
  // Which metrics get percentile fields. Library callers (pdserve bench) get all four latency
  // metrics; `pdserve loadgen` defaults to vllm's "ttft,tpot,itl".
  std::vector<std::string> percentile_metrics = {"ttft", "tpot", "itl", "e2el"};
  SloSpec goodput;

  double request_timeout_s = 600;  // per-request deadline (gRPC, or the whole HTTP exchange)
  double connect_timeout_s = 10;   // waiting for the target's channel to become ready
  int num_channels = 2;            // gRPC: separate HTTP/2 connections, requests spread round-robin
  ProgressMode progress = ProgressMode::kAuto;

  // Labels copied into the result. `backend` names the API (ClientApiName(api)) unless a
  // caller sets it; `label` says what else the run was (transfer backend, workload).
  std::string backend = "pdserve";
  std::string label;
  std::string model_id;  // empty: "pdserve/<the target's preset>"
  std::string tokenizer_id;  // vllm's tokenizer_id field; empty: the model id (as vllm)
  // vllm's --metadata KEY=VALUE pairs, written into the result as top-level keys (a result
  // field of the same name wins, as in vllm).
  std::vector<std::pair<std::string, std::string>> metadata;
};

}  // namespace pdserve::loadgen
