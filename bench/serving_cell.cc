#include "bench/serving_cell.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bench/capacity.h"
#include "bench/cell_usage.h"
#include "bench/host_bound.h"
#include "bench/serving_backends.h"
#include "common/status_macros.h"
#include "loadgen/load_runner.h"
#include "loadgen/result_csv.h"
#include "loadgen/result_json.h"

namespace pdserve::bench {
namespace {

// The per-cell line on stdout: the numbers people look at first, and the verdict.
void PrintCell(const ServingRun& run, const loadgen::BenchmarkResult& result) {
  const HostBoundVerdict v = JudgeHostBound(
      run.usage,
      {ResultNumber(run.result, "p99_send_lag_ms"), ResultNumber(run.result, "max_send_lag_ms")});
  const std::string verdict =
      v.host_bound   ? absl::StrCat("host-bound: ", absl::StrJoin(v.reasons, "; "))
      : v.unverified ? absl::StrCat("unverified: ", absl::StrJoin(v.notes, "; "))
                     : "ok";
  std::printf(
      "        completed %d failed %d  TTFT p50/p99 %.1f/%.1f ms  TPOT p99 %.2f ms  "
      "KV transfer mean %.3f ms  %.1f s  %s%s\n",
      result.metrics.completed, result.metrics.failed, ResultNumber(run.result, "median_ttft_ms"),
      ResultNumber(run.result, "p99_ttft_ms"), ResultNumber(run.result, "p99_tpot_ms"),
      ResultNumber(run.result, "mean_kv_transfer_ms"), run.usage.wall_s, verdict.c_str(),
      run.error.empty() ? "" : ("  ERROR: " + run.error).c_str());
}

}  // namespace

loadgen::LoadOptions CellLoad(const ServingBenchOptions& o, const cluster::Cluster& cl,
                              const std::string& backend, const CellPlan& cell) {
  loadgen::LoadOptions load;
  load.target = cl.endpoint();
  if (o.api == "http") {
    load.api = loadgen::ClientApi::kOpenAi;
    load.base_url = cl.http_url();
  }
  load.num_prompts = cell.prompts;
  load.num_warmups = 0;  // the cluster was warmed once (RunBackend)
  load.arrival.request_rate = cell.rate;
  load.random.input_len = cell.input_len;
  load.random.output_len = cell.output_len;
  load.preset = o.preset;
  load.verify = o.verify;
  // Every run's JSON then has request_goodput under the sweep's SLOs (the report's goodput).
  load.goodput = SweepSlos(o.slo);
  load.progress = loadgen::ProgressMode::kAuto;
  load.backend = loadgen::ClientApiName(load.api);
  load.label = absl::StrCat(backend, "-in", cell.input_len, "-out", cell.output_len);
  return load;
}

// One cell on a running cluster: the measured requests between two usage samples.
absl::StatusOr<ServingRun> RunCell(const ServingBenchOptions& o, cluster::Cluster& cl,
                                   const std::string& backend, const CellPlan& cell, uint64_t seed,
                                   const std::string& dir) {
  ServingRun run{.backend = backend,
                 .input_len = cell.input_len,
                 .output_len = cell.output_len,
                 .request_rate = cell.rate,
                 .prompts = cell.prompts,
                 .seed = seed};
  loadgen::LoadOptions load = CellLoad(o, cl, backend, cell);
  load.seed = seed;  // the same per cell for every backend: same prompts, same arrivals
  const std::string stem = absl::StrCat(backend, "_in", cell.input_len, "_out", cell.output_len,
                                        "_rate", loadgen::RequestRateName(cell.rate));
  const CellUsageProbe probe = CellUsageProbe::Start(cl);
  absl::StatusOr<loadgen::BenchmarkResult> result = loadgen::RunLoad(load);
  run.usage = probe.Finish(cl);
  run.usage.modelled = o.compute == "roofline";
  if (!result.ok()) {
    run.error = std::string(result.status().message());
    return run;
  }
  RETURN_IF_ERROR(loadgen::WriteResultJson(*result, absl::StrCat(dir, "/", stem, ".json")));
  RETURN_IF_ERROR(loadgen::WriteRequestsCsv(*result, absl::StrCat(dir, "/", stem, ".csv")));
  run.result = loadgen::ResultToJson(*result, /*per_request=*/true);
  run.result_file = stem + ".json";
  if (result->metrics.failed > 0) {
    run.error =
        absl::StrCat(result->metrics.failed, " of ", result->requests.size(), " requests failed");
  } else if (result->verify_mismatches > 0) {
    run.error = absl::StrCat(result->verify_mismatches,
                             " requests returned tokens that differ from the model");
  } else if (std::string leaks = LeakedBlocks(cl); !leaks.empty()) {
    run.error = absl::StrCat("KV blocks not freed after the run: ", leaks);
  }
  PrintCell(run, *result);
  return run;
}

absl::StatusOr<std::unique_ptr<cluster::Cluster>> StartServingCluster(
    const ServingBenchOptions& o, const std::string& user_backend, uint32_t decode_blocks,
    const std::vector<CellPlan>& cells, const std::string& dir, cluster::ClusterOptions& c) {
  const std::string backend = BackendLabel(user_backend, o.device);
  c.num_prefill = o.num_prefill;
  c.num_decode = o.num_decode;
  c.preset = o.preset;
  c.compute = o.compute;
  c.gpu = o.gpu;
  c.pool_gib = o.pool_gib;
  c.decode_blocks = decode_blocks;
  c.layout = o.layout;
  if (o.stream_chunk_tokens > 0) {
    c.prefill_args.insert(c.prefill_args.end(),
                          {"--stream-chunk-tokens", absl::StrCat(o.stream_chunk_tokens)});
  }
  // The workers' bulk work (K/V generation, the decode worker's full KV reads when a request's
  // KV lands and when it ends) may use every core where one thread cannot keep up: a
  // 2048-token prompt's 256 MiB must be read within about one modelled decode step
  // (docs/model.md). Smaller jobs stay on one thread (kvcache/cpu_attention.cc).
  c.threads = 0;
  c.log_level = "warn";
  c.log_dir = absl::StrCat(dir, "/logs-", backend);
  c.gpus.prefill = o.prefill_gpus;
  c.gpus.decode = o.decode_gpus;
  if (absl::Status s = ConfigureBackend(user_backend, o.device, c); !s.ok()) return s;
  if (c.num_colocated > 0 && !c.gpus.empty()) {
    // The same devices as the P/D cluster's, one colocated worker on each.
    c.gpus.colocated = o.prefill_gpus;
    c.gpus.colocated.insert(c.gpus.colocated.end(), o.decode_gpus.begin(), o.decode_gpus.end());
    c.gpus.prefill.clear();
    c.gpus.decode.clear();
  }
  std::printf("[%s] starting cluster...\n", backend.c_str());
  std::fflush(stdout);
  absl::StatusOr<std::unique_ptr<cluster::Cluster>> cl = cluster::Cluster::Start(c);
  if (cl.ok()) {
    // Connections, first touches of the pools and the first batches happen here, not in the
    // first cell: a few requests of the longest prompt, all at once.
    CellPlan warm = cells.front();
    for (const CellPlan& cell : cells) warm.input_len = std::max(warm.input_len, cell.input_len);
    warm.output_len = std::min(warm.output_len, 8);
    warm.rate = INFINITY;
    warm.prompts = 2;
    loadgen::LoadOptions load = CellLoad(o, **cl, backend, warm);
    load.seed = o.seed ^ 0x5eedull;
    if (absl::StatusOr<loadgen::BenchmarkResult> w = loadgen::RunLoad(load);
        !w.ok() || w->metrics.failed > 0) {
      std::printf("[%s] warm-up: %s\n", backend.c_str(),
                  w.ok() ? "some requests failed" : std::string(w.status().message()).c_str());
    }
  }
  return cl;
}

}  // namespace pdserve::bench
