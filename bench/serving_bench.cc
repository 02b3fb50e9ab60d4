#include "bench/serving_bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/cell_usage.h"
#include "bench/request_transfer_baseline.h"
#include "bench/serving_backends.h"
#include "bench/serving_plan.h"
#include "bench/serving_report.h"
#include "cluster/cluster.h"
#include "common/clock.h"
#include "common/model_config.h"
#include "common/roofline.h"
#include "common/status_macros.h"
#include "loadgen/load_runner.h"
#include "loadgen/result_csv.h"
#include "loadgen/result_json.h"
#if PDSERVE_HAS_CUDA
#include "kvcache/cuda/cuda_kernels.h"
#endif

namespace pdserve::bench {
namespace {

std::string Now(const char* format) {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof(buf), format, std::localtime(&t));
  return buf;
}

double Seconds(int64_t since_ns) { return static_cast<double>(MonotonicNanos() - since_ns) / 1e9; }

// A decode pool of `gib` as a block count, so that it can differ from the prefill pool.
absl::StatusOr<uint32_t> BlocksFor(const std::string& preset, double gib) {
  ASSIGN_OR_RETURN(ModelConfig config, PresetConfig(preset));
  const double blocks = std::floor(gib * 1024 * 1024 * 1024 / config.KvBytesPerBlock());
  if (blocks < 1) {
    return absl::InvalidArgumentError(absl::StrCat("a ", gib, " GiB pool holds no block"));
  }
  return static_cast<uint32_t>(blocks);
}

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
                 .request_rate = cell.rate};
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

struct BackendOutcome {
  std::vector<ServingRun> runs;
  std::string transports;  // for the report's "backends" line
  double setup_s = 0;      // transfer baseline, cluster start, warm-up
};

// One backend's share: transfer baseline, cluster, warm-up, every cell, stop. `cells` starts as
// `planned`; with `adapt` (the first backend) it is adapted as the cells run.
absl::Status RunBackend(const ServingBenchOptions& o, const std::string& user_backend,
                        const std::vector<CellPlan>& planned, std::vector<CellPlan>& cells,
                        bool adapt, double cell_seconds, int min_prompts, uint32_t decode_blocks,
                        const std::string& dir, ServingReportContext& context,
                        BackendOutcome& out) {
  const std::string backend = BackendLabel(user_backend, o.device);
  const int64_t setup_start = MonotonicNanos();
  if (o.transfer_baseline && o.device == "cpu") {
    std::vector<int> lens;
    for (const CellPlan& c : cells) {
      if (std::find(lens.begin(), lens.end(), c.input_len) == lens.end())
        lens.push_back(c.input_len);
    }
    std::printf("[%s] transfer baseline: one request's KV for prompts of %s tokens...\n",
                backend.c_str(), absl::StrJoin(lens, ", ").c_str());
    std::fflush(stdout);
    absl::StatusOr<std::vector<RequestTransferBaseline>> rows =
        MeasureRequestTransfers(backend, o.preset, o.layout, lens, 0.3, 5);
    if (rows.ok()) {
      for (const RequestTransferBaseline& r : *rows) {
        std::printf(
            "        %5d tokens: %.1f MiB in %u ops, mean %.3f ms (p50 %.3f, %d transfers)\n",
            r.input_len, r.bytes / 1048576.0, r.ops, r.mean_ms, r.p50_ms, r.transfers);
        context.transfer_baselines.push_back(r);
      }
    } else {
      std::printf("        not measured: %s\n", std::string(rows.status().message()).c_str());
      absl::StrAppend(&context.transfer_baseline_note,
                      context.transfer_baseline_note.empty() ? "" : "; ", backend, ": ",
                      rows.status().message());
    }
  }
  cluster::ClusterOptions c;
  c.num_prefill = o.num_prefill;
  c.num_decode = o.num_decode;
  c.preset = o.preset;
  c.compute = o.compute;
  c.gpu = o.gpu;
  c.pool_gib = o.pool_gib;
  c.decode_blocks = decode_blocks;
  c.layout = o.layout;
  // The workers' bulk work (K/V generation, the decode worker's full KV reads when a request's
  // KV lands and when it ends) may use every core where one thread cannot keep up: a
  // 2048-token prompt's 256 MiB must be read within about one modelled decode step
  // (docs/model.md). Smaller jobs stay on one thread (kvcache/cpu_attention.cc).
  c.threads = 0;
  c.log_level = "warn";
  c.log_dir = absl::StrCat(dir, "/logs-", backend);
  RETURN_IF_ERROR(ConfigureBackend(user_backend, o.device, c));
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
  out.setup_s = Seconds(setup_start);
  // The first backend adapts the plan to the host's pace (AdaptedPrompts) and the others run
  // it as adapted: every backend sends the same prompts at the same times in a cell, so that
  // their differences are the backend's, not the load's.
  for (size_t i = 0; i < cells.size(); ++i) {
    CellPlan& cell = cells[i];
    const bool same_workload =
        adapt && i > 0 && !out.runs.empty() && out.runs.back().error.empty() &&
        cells[i - 1].input_len == cell.input_len && cells[i - 1].output_len == cell.output_len;
    if (same_workload) {
      const ServingRun& last = out.runs.back();
      cell.prompts =
          AdaptedPrompts(cell, cells[i - 1],
                         {.wall_s = last.usage.wall_s,
                          .request_throughput = ResultNumber(last.result, "request_throughput"),
                          .mean_e2el_s = ResultNumber(last.result, "mean_e2el_ms") / 1e3},
                         cell_seconds, min_prompts);
      cell.expected_s = cell.prompts / cell.rate + cell.tail_s;
    }
    std::printf("[%s %zu/%zu] in %d out %d rate %s req/s: %d prompts%s...\n", backend.c_str(),
                i + 1, cells.size(), cell.input_len, cell.output_len,
                loadgen::RequestRateName(cell.rate).c_str(), cell.prompts,
                cell.prompts < planned[i].prompts
                    ? absl::StrCat(" (planned ", planned[i].prompts,
                                   "; cut after the first backend's cell before overran)")
                          .c_str()
                    : "");
    std::fflush(stdout);
    if (!cl.ok()) {
      out.runs.push_back({.backend = backend,
                          .input_len = cell.input_len,
                          .output_len = cell.output_len,
                          .request_rate = cell.rate,
                          .error = absl::StrCat("cluster did not start: ", cl.status().message())});
      continue;
    }
    ASSIGN_OR_RETURN(ServingRun run, RunCell(o, **cl, backend, cell, o.seed + i, dir));
    run.planned_prompts = planned[i].prompts;
    out.runs.push_back(std::move(run));
    std::fflush(stdout);
    if (absl::Status alive = (*cl)->CheckChildren(); !alive.ok()) {
      cl = alive;  // the remaining cells of this backend report it
    }
  }
  if (cl.ok()) {
    std::string env;
    for (const auto& [k, v] : c.env) absl::StrAppend(&env, k, "=", v, " ");
    out.transports = absl::StrCat(backend, ": transfer backend ", c.transfer, ", ", env,
                                  "transports used: ", Transports(**cl));
    (*cl)->Stop();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunServingBench(const ServingBenchOptions& options) {
  const int64_t run_start = MonotonicNanos();
  ServingBenchOptions o = options;
  if (o.api != "grpc" && o.api != "http") {
    return absl::InvalidArgumentError(absl::StrCat("--api must be grpc or http, not '", o.api, "'"));
  }
  std::string device;
  if (o.device == "cuda") {
#if PDSERVE_HAS_CUDA
    ASSIGN_OR_RETURN(device, cuda::DeviceDescription());
#else
    return absl::FailedPreconditionError(
        "--device cuda: this pdserve was built without CUDA (configure with -DPDSERVE_CUDA=ON)");
#endif
    o.compute = "cuda";
    if (o.backends == ServingBenchOptions{}.backends) o.backends = {"local", "ucx"};
    // Device memory is plentiful: room for every request of the quick sweep at once.
    if (o.pool_gib == ServingBenchOptions{}.pool_gib) o.pool_gib = 8;
  } else if (o.device != "cpu") {
    return absl::InvalidArgumentError(
        absl::StrCat("--device must be cpu or cuda, not '", o.device, "'"));
  }
  ASSIGN_OR_RETURN(SweepPlan plan, ResolveSweep(o.matrix, o.device == "cuda",
                                                {o.input_lens, o.output_lens, o.rates,
                                                 o.cell_seconds, o.min_prompts, o.max_prompts}));
  ASSIGN_OR_RETURN(ModelConfig config, PresetConfig(o.preset));
  std::optional<RooflineModel> roofline;
  if (o.compute == "roofline") {
    ASSIGN_OR_RETURN(GpuSpec gpu, GpuSpecByName(o.gpu));
    roofline.emplace(config, gpu);
  }
  const std::vector<CellPlan> planned = PlanCells(plan, roofline ? &*roofline : nullptr);
  std::vector<CellPlan> cells = planned;
  double planned_s = 0;
  for (const CellPlan& c : planned) planned_s += c.expected_s;
  const int max_in = *std::max_element(plan.input_lens.begin(), plan.input_lens.end());
  const int max_out = *std::max_element(plan.output_lens.begin(), plan.output_lens.end());
  constexpr int kConcurrent = 24;
  constexpr double kMaxDecodePoolGib = 8;
  const double decode_gib =
      o.decode_pool_gib > 0 ? o.decode_pool_gib
      : o.decode_pool_gib == 0
          ? o.pool_gib
          : DecodePoolGib(config, max_in, max_out, kConcurrent, o.pool_gib, kMaxDecodePoolGib);
  ASSIGN_OR_RETURN(uint32_t decode_blocks, BlocksFor(o.preset, decode_gib));

  const std::string dir =
      o.result_dir.empty() ? absl::StrCat("results/bench-", Now("%Y%m%d-%H%M%S")) : o.result_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));

  const std::string compute =
      o.compute == "roofline" ? absl::StrCat("roofline (", o.gpu, ")") : o.compute;
  std::printf(
      "pdserve bench (%s, load over %s): backends %s, preset %s, compute %s, %d prefill + %d "
      "decode, inputs %s, outputs %s, rates %s req/s; %zu cells per backend, %.1f min for all "
      "backends at the modelled speed (cluster starts and baselines not included)\n",
      plan.name.c_str(), o.api.c_str(), absl::StrJoin(o.backends, ",").c_str(), o.preset.c_str(), compute.c_str(),
      o.num_prefill, o.num_decode, absl::StrJoin(plan.input_lens, ",").c_str(),
      absl::StrJoin(plan.output_lens, ",").c_str(), absl::StrJoin(plan.rates, ",").c_str(),
      cells.size(), planned_s * o.backends.size() / 60);
  if (!device.empty()) std::printf("device: %s\n", device.c_str());
  std::fflush(stdout);

  ServingReportContext context;
  std::vector<ServingRun> runs;
  std::vector<std::string> transports;
  double setup_s = 0;
  for (const std::string& user_backend : o.backends) {
    BackendOutcome outcome;
    RETURN_IF_ERROR(RunBackend(o, user_backend, planned, cells,
                               /*adapt=*/&user_backend == &o.backends.front(), plan.cell_seconds,
                               plan.min_prompts, decode_blocks, dir, context, outcome));
    for (ServingRun& r : outcome.runs) runs.push_back(std::move(r));
    if (!outcome.transports.empty()) transports.push_back(outcome.transports);
    setup_s += outcome.setup_s;
  }
  if (o.device != "cpu") context.transfer_baseline_note = "not measured with --device cuda";
  if (!o.transfer_baseline) context.transfer_baseline_note = "--transfer-baseline false";

  context.date = Now("%Y-%m-%d %H:%M:%S %Z");
  context.preset = o.preset;
  context.compute = compute;
  context.decode_pool_gib = decode_gib;
  const double request_mib = static_cast<double>(config.BlocksForTokens(max_in + max_out)) *
                             config.KvBytesPerBlock() / 1048576.0;
  context.cluster = absl::StrFormat(
      "%d prefill + %d decode workers on one host, %s KV layout; KV pools: %g GiB per prefill "
      "worker, %.2f GiB per decode worker (room for %.0f requests of the largest cell, "
      "in%d+out%d = %.0f MiB reserved each; requests beyond that wait at the router for blocks: "
      "they queue, they do not fail)",
      o.num_prefill, o.num_decode, o.layout, o.pool_gib, decode_gib,
      std::floor(decode_gib * 1024 / request_mib), max_in, max_out, request_mib);
  context.command = o.command_line;
  context.device = device;
  if (!o.backends.empty()) context.baseline = BackendLabel(o.backends.front(), o.device);
  context.backends = absl::StrJoin(transports, "; ");
  context.choices = absl::StrFormat(
      "matrix %s: inputs %s, outputs %s, rates %s req/s (Poisson); prompts per cell = "
      "clamp(round(rate x max(%g s - tail, %g s / 3)), %d, %d), where tail is one request's "
      "prefill + output x decode step at the modelled speed (Little's law for the decode "
      "batch); the same prompts and arrival times in a cell for every backend; one cluster per "
      "backend, warmed by 2 requests of the longest prompt; load sent over %s; tokens verified "
      "against the model: %s. %s",
      plan.name, absl::StrJoin(plan.input_lens, ","), absl::StrJoin(plan.output_lens, ","),
      absl::StrJoin(plan.rates, ","), plan.cell_seconds, plan.cell_seconds, plan.min_prompts,
      plan.max_prompts,
      o.api == "http" ? "HTTP (OpenAI /v1/completions, streamed)" : "gRPC (Router.Generate)",
      o.verify ? "yes" : "no",
      o.compute == "cuda"
          ? "KV bytes are real and live in GPU memory: prefill writes K/V and runs causal "
            "attention on the GPU, every decode step runs paged attention over every KV byte of "
            "every running request on the GPU; the per-layer dense GEMMs are not run"
          : "KV bytes are real and made, moved and checked on this host's CPU: where that work "
            "outlasts the modelled time the cell is marked host-bound");
  double cells_s = 0;
  for (const ServingRun& r : runs) cells_s += r.usage.wall_s;
  context.timing = absl::StrFormat(
      "%.1f min in all: cells %.1f min (%.1f min at the modelled speed), transfer baselines, "
      "cluster starts and warm-ups %.1f min",
      Seconds(run_start) / 60, cells_s / 60, planned_s * o.backends.size() / 60, setup_s / 60);
  std::string headline;
  RETURN_IF_ERROR(WriteServingReportInputs(dir, context, runs));
  RETURN_IF_ERROR(WriteServingReport(dir, context, runs, &headline));
  int failed = 0;
  for (const ServingRun& r : runs) failed += !r.error.empty();
  std::printf("\nreport: %s/report.md (%s)\n%s\n", dir.c_str(), context.timing.c_str(),
              headline.c_str());
  if (failed > 0) {
    return absl::InternalError(
        absl::StrCat(failed, " of ", runs.size(), " runs failed; see ", dir, "/report.md"));
  }
  return absl::OkStatus();
}

}  // namespace pdserve::bench
