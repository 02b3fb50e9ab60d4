#include "cli/loadgen_flags.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace pdserve::cli {
namespace {

using loadgen::LoadOptions;

// vllm bench serve's dataset names that pdserve does not generate, for the error message.
constexpr char kVllmOnlyDatasets[] =
    "sonnet, hf, custom, burstgpt, random-mm, random-rerank, prefix_repetition, spec_bench, "
    "timed_trace";

absl::Status ResolveDataset(LoadgenFlags& f) {
  LoadOptions& o = f.options;
  const bool named = f.dataset_name_option != nullptr && f.dataset_name_option->count() > 0;
  if (f.dataset_name == "trace" || (!named && !f.dataset_path.empty())) {
    o.dataset = loadgen::DatasetKind::kTrace;
    o.trace_path = f.dataset_path;
    return absl::OkStatus();
  }
  if (f.dataset_name == "sharegpt") {
    if (f.dataset_path.empty()) {
      return absl::InvalidArgumentError(
          "--dataset-name sharegpt needs --dataset-path (a ShareGPT JSON file, e.g. "
          "ShareGPT_V3_unfiltered_cleaned_split.json)");
    }
    o.dataset = loadgen::DatasetKind::kShareGpt;
    o.trace_path = f.dataset_path;
    o.sharegpt_output_len = f.sharegpt_output_len;
    return absl::OkStatus();
  }
  if (f.dataset_name != "random") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown --dataset-name '", f.dataset_name,
        "': pdserve loadgen supports random (vllm's random: uniform lengths from "
        "--random-input-len/--random-output-len/--random-range-ratio/--random-prefix-len), "
        "sharegpt (vllm's ShareGPT JSON with --dataset-path) and trace (JSONL replay with "
        "--dataset-path); vllm's ",
        kVllmOnlyDatasets, " need real text or a tokenizer, which the mock model has not"));
  }
  if (!f.dataset_path.empty()) {  // as vllm: random takes no file
    return absl::InvalidArgumentError(
        "--dataset-name random takes no --dataset-path (use --dataset-name trace for a file)");
  }
  o.dataset = loadgen::DatasetKind::kRandom;
  // vllm's general lengths win over the random-specific ones.
  if (f.input_len >= 0) o.random.input_len = f.input_len;
  if (f.output_len >= 0) o.random.output_len = f.output_len;
  return absl::OkStatus();
}

absl::Status ResolveMetadata(LoadgenFlags& f) {
  for (const std::string& item : f.metadata) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--metadata takes KEY=VALUE pairs, got '", item, "'"));
    }
    f.options.metadata.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return absl::OkStatus();
}

void AddVllmCompatibilityFlags(CLI::App* cmd, LoadgenFlags& f) {
  LoadOptions& o = f.options;
  const char* group = "vllm bench serve compatibility";
  cmd->add_option("--input-len", f.input_len, "vllm's general input length: --random-input-len")
      ->group(group);
  cmd->add_option("--output-len", f.output_len,
                  "vllm's general output length: --random-output-len")
      ->group(group);
  cmd->add_option("--percentile-metrics", f.percentile_metrics,
                  "metrics with mean/median/std/p<P> fields and table sections: ttft, tpot, itl, "
                  "e2el, client_queue_time, e2el_including_client_queue (the last two only with "
                  "--max-concurrency, as vllm)")
      ->capture_default_str()
      ->group(group);
  cmd->add_option("--metadata", f.metadata, "KEY=VALUE pairs written into the result JSON")
      ->group(group);
  cmd->add_option("--tokenizer", o.tokenizer_id,
                  "stored as tokenizer_id; prompts still use the mock's synthetic tokenizer")
      ->group(group);
  f.disable_tqdm_option =
      cmd->add_flag("--disable-tqdm")->description("no progress line (--progress off)")->group(group);
  // Accepted so that vllm command lines run unchanged; they change nothing here, and say why.
  const char* ignored = "vllm bench serve flags accepted and ignored";
  cmd->add_flag("--ignore-eos")
      ->description("ignored: every request already asks for ignore_eos (the mock has no EOS; "
                    "vllm forces it for random prompts too)")
      ->group(ignored);
  cmd->add_flag("--save-detailed")
      ->description("ignored: the per-request arrays (ttfts, itls, start_times, ...) are always "
                    "saved")
      ->group(ignored);
  cmd->add_flag("--trust-remote-code")->description("ignored: no tokenizer is loaded")
      ->group(ignored);
  cmd->add_option("--tokenizer-mode")->description("ignored: no tokenizer is loaded")
      ->group(ignored);
  for (const char* sampling : {"--temperature", "--top-p", "--top-k", "--min-p"}) {
    cmd->add_option(sampling)
        ->description("ignored: the synthetic model's tokens depend only on the prompt and the "
                      "request's seed")
        ->group(ignored);
  }
}

}  // namespace

const char kLoadgenFooter[] =
    "Exit status: 0 every request completed (or --allow-failures); 1 some requests failed or "
    "returned tokens --verify rejected; 2 no request completed; 3 the run could not start or its "
    "results could not be written; CLI11's codes (>= 100) for malformed flags.\n"
    "vllm bench serve flags not listed here (--ramp-up-*, --request-id-prefix, "
    "--served-model-name, --profile, ...) are errors, not silently dropped.\n";

absl::Status ResolveLoadgenFlags(LoadgenFlags& f) {
  LoadOptions& o = f.options;
  // vllm's default backend is openai: a --base-url (an HTTP URL) without --backend means it.
  const bool backend_given = f.backend_option != nullptr && f.backend_option->count() > 0;
  const std::string backend = !backend_given && !o.base_url.empty() ? "openai" : f.backend;
  ASSIGN_OR_RETURN(o.api, loadgen::ParseClientApi(backend));
  o.backend = backend == "vllm" ? backend : loadgen::ClientApiName(o.api);  // as given, as vllm
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
  } else if (std::isinf(o.arrival.burstiness)) {
    o.arrival.process = loadgen::ArrivalProcess::kConstant;  // vllm: inf burstiness, fixed gaps
  } else if (o.arrival.burstiness != 1.0) {
    o.arrival.process = loadgen::ArrivalProcess::kGamma;  // as vllm: burstiness implies gamma
  }
  RETURN_IF_ERROR(ResolveDataset(f));
  ASSIGN_OR_RETURN(o.percentiles, loadgen::ParsePercentiles(f.percentiles));
  ASSIGN_OR_RETURN(o.percentile_metrics, loadgen::ParsePercentileMetrics(f.percentile_metrics));
  ASSIGN_OR_RETURN(o.goodput, loadgen::ParseSloSpec(f.goodput));
  RETURN_IF_ERROR(ResolveMetadata(f));
  if (f.disable_tqdm_option != nullptr && f.disable_tqdm_option->count() > 0) f.progress = "off";
  if (f.progress == "on") {
    o.progress = loadgen::ProgressMode::kOn;
  } else if (f.progress == "off") {
    o.progress = loadgen::ProgressMode::kOff;
  } else if (f.progress != "auto") {
    return absl::InvalidArgumentError("--progress must be auto, on or off");
  }
  return absl::OkStatus();
}

void AddLoadgenFlags(CLI::App* cmd, LoadgenFlags& f) {
  LoadOptions& o = f.options;
  f.backend_option =
      cmd->add_option("--backend", f.backend,
                      "the API, as vllm bench serve's --backend: pdserve (gRPC Router.Generate at "
                      "--target), openai or vllm (/v1/completions at --base-url), openai-chat "
                      "(/v1/chat/completions); stored as 'backend' in the result (default: "
                      "openai when --base-url is given, else pdserve)");
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
  cmd->add_option("--host", f.host, "target host (with --port, instead of --target)");
  cmd->add_option("--port", f.port, "target port");
  cmd->add_option("--num-prompts", o.num_prompts)->capture_default_str();
  cmd->add_option("--request-rate", f.request_rate, "requests/s, or inf: all at once")
      ->capture_default_str();
  cmd->add_option("--arrival-process", f.arrival_process,
                  "poisson (default), gamma (default when --burstiness != 1), constant (default "
                  "when --burstiness inf)");
  cmd->add_option("--burstiness", o.arrival.burstiness, "gamma shape: CV of gaps = 1/sqrt(b)")
      ->capture_default_str();
  cmd->add_option("--max-concurrency", o.max_concurrency, "0: unlimited")->capture_default_str();
  cmd->add_option("--num-warmups", o.num_warmups, "warm-up requests, excluded from results")
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "schedule, lengths and prompts")->capture_default_str();
  f.dataset_name_option =
      cmd->add_option("--dataset-name", f.dataset_name,
                      "random (vllm's), sharegpt (vllm's ShareGPT JSON at --dataset-path; "
                      "lengths in the mock tokenizer's words) or trace (default when "
                      "--dataset-path is given)")
          ->capture_default_str();
  cmd->add_option("--dataset-path,--trace", f.dataset_path,
                  "trace: JSONL, {\"arrival_s\": s, \"input_len\": n, \"output_len\": n} per "
                  "line; sharegpt: the ShareGPT JSON");
  cmd->add_option("--sharegpt-output-len", f.sharegpt_output_len,
                  "sharegpt: every request's output length (default: the reply's length)");
  cmd->add_option("--random-input-len", o.random.input_len)->capture_default_str();
  cmd->add_option("--random-output-len", o.random.output_len)->capture_default_str();
  cmd->add_option("--random-range-ratio", o.random.range_ratio)->capture_default_str();
  cmd->add_option("--random-prefix-len", o.random.prefix_len, "shared prefix tokens")
      ->capture_default_str();
  cmd->add_option("--percentiles,--metric-percentiles", f.percentiles,
                  "percentiles of the --percentile-metrics (vllm's default: 99)")
      ->capture_default_str();
  cmd->add_option("--goodput", f.goodput, "SLOs: ttft:MS tpot:MS e2el:MS");
  cmd->add_flag("--allow-failures", f.allow_failures,
                "exit 0 even when requests failed (they are still counted and reported)");
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
  cmd->add_option("--progress", f.progress, "auto (when stderr is a tty), on, off")
      ->capture_default_str();
  cmd->add_option("--label", o.label,
                  "stored as 'label' (what else this run was); names the default result file");
  cmd->add_option("--model", o.model_id, "the model name, as vllm bench serve: sent in every HTTP request, refused before sending when the server does not serve it (GET /v1/models); stored as model_id (default pdserve/<preset>)");
  cmd->add_flag("--save-result", f.save_result, "write the JSON (and CSV) to --result-dir");
  cmd->add_option("--result-dir", f.result_dir)->capture_default_str();
  cmd->add_option("--result-filename", f.result_filename);
  cmd->add_option("--output-json", f.output_json, "write the JSON here");
  cmd->add_option("--output-csv", f.output_csv, "per-request CSV (default: next to the JSON)");
  cmd->add_option("--builtin-tokens-per-chunk", f.builtin_tokens_per_chunk)
      ->capture_default_str();
  cmd->add_option("--builtin-fail-every", f.builtin_fail_every,
                  "builtin target fails every Nth request (0: none)")
      ->capture_default_str();
  cmd->add_flag("--builtin-wrong-tokens", f.builtin_wrong_tokens,
                "builtin target answers tokens that do not match the model");
  AddVllmCompatibilityFlags(cmd, f);
  cmd->footer(kLoadgenFooter);
}

}  // namespace pdserve::cli
