// `pdserve loadgen`: an open-loop load generator against a Router.Generate endpoint (gRPC) or an
// OpenAI-compatible HTTP API, with the flags and result fields of `vllm bench serve`.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "common/status_macros.h"
#include "loadgen/echo_target.h"
#include "loadgen/load_runner.h"
#include "loadgen/result_csv.h"
#include "loadgen/result_json.h"
#include "loadgen/result_table.h"
#include "loadgen/saved_result.h"

namespace pdserve::cli {
namespace {

using loadgen::LoadOptions;

// Flags as parsed, before they become LoadOptions.
struct LoadgenFlags {
  LoadOptions options;
  std::string host, request_rate = "inf", arrival_process, dataset_name = "random", dataset_path;
  int port = 0;
  std::string percentiles = "50,90,95,99";
  std::vector<std::string> goodput;
  std::string progress = "auto";
  std::string backend = "pdserve";
  bool save_result = false;
  std::string result_dir = ".", result_filename, output_json, output_csv;
  int builtin_tokens_per_chunk = 1, builtin_fail_every = 0;
  bool builtin_wrong_tokens = false;
};

absl::Status ResolveOptions(LoadgenFlags& f) {
  LoadOptions& o = f.options;
  ASSIGN_OR_RETURN(o.api, loadgen::ParseClientApi(f.backend));
  o.backend = loadgen::ClientApiName(o.api);
  if (!f.host.empty() || f.port > 0) {
    const std::string host_port =
        absl::StrCat(f.host.empty() ? "127.0.0.1" : f.host, ":", f.port > 0 ? f.port : 8000);
    o.target = host_port;
    if (o.base_url.empty()) o.base_url = absl::StrCat("http://", host_port);  // as vllm
  }
  if (o.api != loadgen::ClientApi::kPdserve && o.target == "builtin") {
    return absl::InvalidArgumentError(
        "the built-in echo target speaks gRPC only: --backend pdserve with --target builtin");
  }
  ASSIGN_OR_RETURN(o.arrival.request_rate, loadgen::ParseRequestRate(f.request_rate));
  if (!f.arrival_process.empty()) {
    ASSIGN_OR_RETURN(o.arrival.process, loadgen::ParseArrivalProcess(f.arrival_process));
  } else if (o.arrival.burstiness != 1.0) {
    o.arrival.process = loadgen::ArrivalProcess::kGamma;  // as vllm: burstiness implies gamma
  }
  if (f.dataset_name == "trace" || !f.dataset_path.empty()) {
    o.dataset = loadgen::DatasetKind::kTrace;
    o.trace_path = f.dataset_path;
  } else if (f.dataset_name != "random") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown --dataset-name '", f.dataset_name, "' (random, trace)"));
  }
  ASSIGN_OR_RETURN(o.percentiles, loadgen::ParsePercentiles(f.percentiles));
  ASSIGN_OR_RETURN(o.goodput, loadgen::ParseSloSpec(f.goodput));
  if (f.progress == "on") {
    o.progress = loadgen::ProgressMode::kOn;
  } else if (f.progress == "off") {
    o.progress = loadgen::ProgressMode::kOff;
  } else if (f.progress != "auto") {
    return absl::InvalidArgumentError("--progress must be auto, on or off");
  }
  return absl::OkStatus();
}

absl::Status RunLoadgenCommand(LoadgenFlags f) {
  RETURN_IF_ERROR(ResolveOptions(f));
  if (f.options.save_token_ids && !f.save_result && f.output_json.empty()) {
    return absl::InvalidArgumentError(
        "--save-token-ids writes the ids into the result JSON: add --save-result or --output-json");
  }
  std::unique_ptr<loadgen::EchoTarget> builtin;
  if (f.options.target == "builtin") {
    loadgen::EchoTargetOptions echo;
    echo.preset = f.options.preset.empty() ? "tiny" : f.options.preset;
    echo.tokens_per_chunk = f.builtin_tokens_per_chunk;
    echo.fail_every = f.builtin_fail_every;
    echo.reference_tokens = !f.builtin_wrong_tokens;
    ASSIGN_OR_RETURN(builtin, loadgen::EchoTarget::Start(echo));
    f.options.target = builtin->address();
    std::fprintf(stderr, "built-in echo target listening on %s\n", f.options.target.c_str());
  }
  ASSIGN_OR_RETURN(loadgen::BenchmarkResult result, loadgen::RunLoad(f.options));
  std::fputs(loadgen::FormatResultTable(result).c_str(), stdout);
  std::fflush(stdout);  // the table before any error about writing the files

  std::string json_path = f.output_json;
  if (json_path.empty() && f.save_result) {
    const std::string name =
        f.result_filename.empty() ? loadgen::DefaultResultFilename(result) : f.result_filename;
    json_path = (std::filesystem::path(f.result_dir) / name).string();
  }
  std::string csv_path = f.output_csv;
  if (csv_path.empty() && !json_path.empty()) {
    csv_path = std::filesystem::path(json_path).replace_extension(".csv").string();
  }
  for (const std::string& path : {json_path, csv_path}) {
    const auto parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!path.empty() && !parent.empty()) std::filesystem::create_directories(parent, ec);
  }
  if (!json_path.empty()) RETURN_IF_ERROR(loadgen::WriteResultJson(result, json_path));
  if (!csv_path.empty()) RETURN_IF_ERROR(loadgen::WriteRequestsCsv(result, csv_path));
  if (!json_path.empty() || !csv_path.empty()) {
    std::printf("Results: %s%s%s\n", json_path.c_str(),
                json_path.empty() || csv_path.empty() ? "" : " and ", csv_path.c_str());
  } else {
    std::printf("Results: console only (--save-result or --output-json to keep them)\n");
  }
  if (f.options.verify && result.verify_mismatches > 0) {
    return absl::DataLossError(absl::StrCat("verify: ", result.verify_mismatches,
                                            " requests differ from model::ReferenceGenerate"));
  }
  return absl::OkStatus();
}

absl::Status RunVerifySaved(const std::string& path) {
  ASSIGN_OR_RETURN(loadgen::SavedResultCheck check, loadgen::VerifySavedResultFile(path));
  const std::string model = ModelSummary(check.model);
  const std::string counts = absl::StrCat(check.requests, " in the file, ", check.failed_in_run,
                                          " failed in the run and not checked");
  if (!check.mismatched.empty()) {
    const size_t shown = std::min<size_t>(check.mismatched.size(), 5);
    return absl::DataLossError(absl::StrCat(
        "verify: ", check.mismatched.size(), " of ", check.checked,
        " checked requests differ from model::ReferenceGenerate for model ", model, ": ",
        absl::StrJoin(check.mismatched.begin(), check.mismatched.begin() + shown, ", "),
        check.mismatched.size() > shown ? ", ..." : "", " (", counts, ")"));
  }
  std::printf("verify: OK, %d checked requests equal model::ReferenceGenerate for model %s (%s)\n",
              check.checked, model.c_str(), counts.c_str());
  return absl::OkStatus();
}

// `pdserve loadgen verify --result FILE`: re-checks a result saved with --save-token-ids,
// without the cluster.
void AddVerifySubcommand(CLI::App* loadgen) {
  CLI::App* cmd = loadgen->add_subcommand(
      "verify", "Re-verify a result saved with --save-token-ids against model::ReferenceGenerate");
  auto path = std::make_shared<std::string>();
  cmd->add_option("--result", *path, "the saved result JSON")->required();
  cmd->callback([path] { ExitWith(RunVerifySaved(*path)); });
}

void AddLoadgenCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "loadgen",
      "Open-loop load against Router.Generate (gRPC) or an OpenAI-compatible HTTP API; vllm "
      "bench serve metrics and fields");
  auto f = std::make_shared<LoadgenFlags>();
  LoadOptions& o = f->options;
  cmd->add_option("--backend", f->backend,
                  "the API, as vllm bench serve's --backend: pdserve (gRPC Router.Generate at "
                  "--target), openai (/v1/completions at --base-url), openai-chat "
                  "(/v1/chat/completions); stored as 'backend' in the result")
      ->capture_default_str();
  cmd->add_option("--target", o.target, "host:port of Router.Generate, or 'builtin' (echo target)")
      ->capture_default_str();
  cmd->add_option("--base-url", o.base_url,
                  "http://HOST:PORT of the OpenAI-compatible API (--backend openai*; default from "
                  "--host/--port)");
  cmd->add_option("--endpoint", o.endpoint,
                  "API path (default /v1/completions, /v1/chat/completions for openai-chat)");
  cmd->add_option("--http-threads", o.http_io_threads,
                  "io threads of the HTTP client (--backend openai*)")
      ->capture_default_str();
  cmd->add_option("--host", f->host, "target host (with --port, instead of --target)");
  cmd->add_option("--port", f->port, "target port");
  cmd->add_option("--num-prompts", o.num_prompts)->capture_default_str();
  cmd->add_option("--request-rate", f->request_rate, "requests/s, or inf: all at once")
      ->capture_default_str();
  cmd->add_option("--arrival-process", f->arrival_process,
                  "poisson (default), gamma (default when --burstiness != 1), constant");
  cmd->add_option("--burstiness", o.arrival.burstiness, "gamma shape: CV of gaps = 1/sqrt(b)")
      ->capture_default_str();
  cmd->add_option("--max-concurrency", o.max_concurrency, "0: unlimited")->capture_default_str();
  cmd->add_option("--num-warmups", o.num_warmups, "warm-up requests, excluded from results")
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "schedule, lengths and prompts")->capture_default_str();
  cmd->add_option("--dataset-name", f->dataset_name, "random or trace")->capture_default_str();
  cmd->add_option("--dataset-path,--trace", f->dataset_path,
                  "JSONL trace: {\"arrival_s\": s, \"input_len\": n, \"output_len\": n} per line");
  cmd->add_option("--random-input-len", o.random.input_len)->capture_default_str();
  cmd->add_option("--random-output-len", o.random.output_len)->capture_default_str();
  cmd->add_option("--random-range-ratio", o.random.range_ratio)->capture_default_str();
  cmd->add_option("--random-prefix-len", o.random.prefix_len, "shared prefix tokens")
      ->capture_default_str();
  cmd->add_option("--percentiles,--metric-percentiles", f->percentiles)->capture_default_str();
  cmd->add_option("--goodput", f->goodput, "SLOs: ttft:MS tpot:MS e2el:MS");
  cmd->add_option("--preset", o.preset,
                  "the target's preset (checked against its GetStatus; the model only for a "
                  "target that reports none; default: the target's)");
  cmd->add_flag("--verify", o.verify,
                "check every token against model::ReferenceGenerate with the target's model "
                "(preset, block size, dtype from its GetStatus)");
  cmd->add_flag("--save-token-ids", o.save_token_ids,
                "also write every request's prompt and output token ids, seed and max_tokens "
                "into the JSON (for `pdserve loadgen verify --result FILE`)");
  cmd->add_option("--request-timeout", o.request_timeout_s, "per-request deadline, s")
      ->capture_default_str();
  cmd->add_option("--connect-timeout", o.connect_timeout_s, "s")->capture_default_str();
  cmd->add_option("--num-channels", o.num_channels, "gRPC connections (--backend pdserve)")
      ->capture_default_str();
  cmd->add_option("--progress", f->progress, "auto (when stderr is a tty), on, off")
      ->capture_default_str();
  cmd->add_option("--label", o.label, "stored as 'label' (what else this run was)");
  cmd->add_option("--model", o.model_id, "stored as model_id (default pdserve/<preset>)");
  cmd->add_flag("--save-result", f->save_result, "write the JSON (and CSV) to --result-dir");
  cmd->add_option("--result-dir", f->result_dir)->capture_default_str();
  cmd->add_option("--result-filename", f->result_filename);
  cmd->add_option("--output-json", f->output_json, "write the JSON here");
  cmd->add_option("--output-csv", f->output_csv, "per-request CSV (default: next to the JSON)");
  cmd->add_option("--builtin-tokens-per-chunk", f->builtin_tokens_per_chunk)
      ->capture_default_str();
  cmd->add_option("--builtin-fail-every", f->builtin_fail_every,
                  "builtin target fails every Nth request (0: none)")
      ->capture_default_str();
  cmd->add_flag("--builtin-wrong-tokens", f->builtin_wrong_tokens,
                "builtin target answers tokens that do not match the model");
  cmd->callback([f] { ExitWith(RunLoadgenCommand(*f)); });
  AddVerifySubcommand(cmd);
}

const bool registered = RegisterCommand("loadgen", AddLoadgenCommand);

}  // namespace
}  // namespace pdserve::cli
