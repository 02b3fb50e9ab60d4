#include "bench/serving_bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/capacity.h"
#include "bench/capacity_phase.h"
#include "bench/cell_usage.h"
#include "bench/request_transfer_baseline.h"
#include "bench/serving_backends.h"
#include "bench/serving_cell.h"
#include "bench/serving_plan.h"
#include "bench/serving_report.h"
#include "bench/serving_sweep.h"
#include "cluster/cluster.h"
#include "common/clock.h"
#include "common/model_config.h"
#include "common/roofline.h"
#include "common/status_macros.h"
#include "loadgen/load_runner.h"
#include "loadgen/metrics.h"
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

// What the sweep shares between backends and cells: every run so far (restored ones first on
// --resume), the transports lines, the ETA, and the report refresh after each cell.
struct SweepRun {
  std::vector<ServingRun> runs;
  std::vector<std::string> transports;  // for the report's "backends" line
  double setup_s = 0;                   // transfer baselines, cluster starts, warm-ups
  SweepProgress* progress = nullptr;
  int64_t start_ns = 0;
  std::function<void()> refresh;  // rewrites report-inputs.json and report.md
};

// Where in sweep.runs the runs `backend` already has (--resume) are, in cell order; -1 where a
// cell has none. Indices, not pointers: sweep.runs grows while the backend runs.
std::vector<int> Restored(const SweepRun& sweep, const std::string& backend,
                          const std::vector<CellPlan>& cells) {
  std::vector<int> out;
  for (const CellPlan& c : cells) {
    const ServingRun* r = FindRun(sweep.runs, backend, c);
    out.push_back(r == nullptr ? -1 : static_cast<int>(r - sweep.runs.data()));
  }
  return out;
}

// One round of the same-run transfer baseline for `backend` (every prompt length of `cells`),
// pooled into the rows an earlier round left in `context`.
void MeasureBaselineRound(const ServingBenchOptions& o, const std::string& backend,
                          const std::vector<CellPlan>& cells, const char* when,
                          ServingReportContext& context) {
  std::vector<int> lens;
  for (const CellPlan& c : cells) {
    if (std::find(lens.begin(), lens.end(), c.input_len) == lens.end()) lens.push_back(c.input_len);
  }
  std::printf("[%s] transfer baseline (%s its cells): one request's KV for prompts of %s tokens...\n",
              backend.c_str(), when, absl::StrJoin(lens, ", ").c_str());
  std::fflush(stdout);
  absl::StatusOr<std::vector<RequestTransferBaseline>> rows =
      MeasureRequestTransfers(backend, o.preset, o.layout, lens, 0.3, 5);
  if (!rows.ok()) {
    std::printf("        not measured: %s\n", std::string(rows.status().message()).c_str());
    absl::StrAppend(&context.transfer_baseline_note,
                    context.transfer_baseline_note.empty() ? "" : "; ", backend, " (", when,
                    "): ", rows.status().message());
    return;
  }
  for (const RequestTransferBaseline& r : *rows) {
    std::printf("        %5d tokens: %.1f MiB in %u ops, mean %.3f ms (p50 %.3f, %d transfers)\n",
                r.input_len, r.bytes / 1048576.0, r.ops, r.mean_ms, r.p50_ms, r.transfers);
    auto same = std::find_if(
        context.transfer_baselines.begin(), context.transfer_baselines.end(),
        [&](const RequestTransferBaseline& b) {
          return b.backend == r.backend && b.input_len == r.input_len;
        });
    if (same == context.transfer_baselines.end()) {
      context.transfer_baselines.push_back(r);
    } else {
      MergeBaseline(*same, r);
    }
  }
}

// One backend's share: transfer baseline, cluster, warm-up, every cell, stop. `cells` starts as
// `planned`; with `adapt` (the first backend) it is adapted as the cells run. Cells this backend
// already ran (--resume) are skipped, and a backend with none left starts nothing.
absl::Status RunBackend(const ServingBenchOptions& o, const std::string& user_backend,
                        const std::vector<CellPlan>& planned, std::vector<CellPlan>& cells,
                        bool adapt, double cell_seconds, int min_prompts, uint32_t decode_blocks,
                        const std::string& dir, ServingReportContext& context, SweepRun& sweep) {
  const std::string backend = BackendLabel(user_backend, o.device);
  const std::vector<int> restored = Restored(sweep, backend, cells);
  for (size_t i = 0; i < cells.size(); ++i) {
    // The adapted prompts of a restored cell are the ones it sent: the later backends send the
    // same.
    if (restored[i] >= 0 && sweep.runs[restored[i]].prompts > 0) {
      cells[i].prompts = sweep.runs[restored[i]].prompts;
    }
  }
  if (std::all_of(restored.begin(), restored.end(), [](int r) { return r >= 0; })) {
    std::printf("[%s] every cell ran before the interruption: skipped\n", backend.c_str());
    return absl::OkStatus();
  }
  const bool have_baseline =
      std::any_of(context.transfer_baselines.begin(), context.transfer_baselines.end(),
                  [&](const RequestTransferBaseline& b) { return b.backend == backend; });
  const int64_t setup_start = MonotonicNanos();
  // Colocated workers move no KV: there is no transfer to measure.
  const bool measure_baseline =
      o.transfer_baseline && o.device == "cpu" && !have_baseline && !IsColocated(user_backend);
  if (measure_baseline) MeasureBaselineRound(o, backend, cells, "before", context);
  cluster::ClusterOptions c;
  absl::StatusOr<std::unique_ptr<cluster::Cluster>> cl =
      StartServingCluster(o, user_backend, decode_blocks, cells, dir, c);
  const double setup_s = Seconds(setup_start);
  sweep.setup_s += setup_s;
  sweep.progress->BackendSetUp(setup_s);
  int last = -1;  // this backend's previous cell, in sweep.runs
  // The first backend adapts the plan to the host's pace (AdaptedPrompts) and the others run
  // it as adapted: every backend sends the same prompts at the same times in a cell, so that
  // their differences are the backend's, not the load's.
  for (size_t i = 0; i < cells.size(); ++i) {
    CellPlan& cell = cells[i];
    if (restored[i] >= 0) {
      last = restored[i];
      continue;  // counted in the progress when the sweep was loaded
    }
    const bool same_workload = adapt && i > 0 && last >= 0 && sweep.runs[last].error.empty() &&
                               cells[i - 1].input_len == cell.input_len &&
                               cells[i - 1].output_len == cell.output_len;
    if (same_workload) {
      const ServingRun& before = sweep.runs[last];
      cell.prompts =
          AdaptedPrompts(cell, cells[i - 1],
                         {.wall_s = before.usage.wall_s,
                          .request_throughput = ResultNumber(before.result, "request_throughput"),
                          .mean_e2el_s = ResultNumber(before.result, "mean_e2el_ms") / 1e3},
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
    ServingRun run;
    if (!cl.ok()) {
      run = {.backend = backend,
             .input_len = cell.input_len,
             .output_len = cell.output_len,
             .request_rate = cell.rate,
             .error = absl::StrCat("cluster did not start: ", cl.status().message())};
    } else {
      ASSIGN_OR_RETURN(run, RunCell(o, **cl, backend, cell, o.seed + i, dir));
    }
    run.planned_prompts = planned[i].prompts;
    sweep.progress->CellDone(planned[i], run.usage.wall_s);
    sweep.runs.push_back(std::move(run));
    last = static_cast<int>(sweep.runs.size()) - 1;
    sweep.refresh();
    std::printf("        %s\n", sweep.progress->Line(Seconds(sweep.start_ns)).c_str());
    std::fflush(stdout);
    if (cl.ok()) {
      if (absl::Status alive = (*cl)->CheckChildren(); !alive.ok()) {
        cl = alive;  // the remaining cells of this backend report it
      }
    }
  }
  if (cl.ok()) {
    std::string env;
    for (const auto& [k, v] : c.env) absl::StrAppend(&env, k, "=", v, " ");
    sweep.transports.push_back(
        c.num_colocated > 0
            ? absl::StrCat(backend, ": ", c.num_colocated,
                           " colocated workers, no KV transfer (transports used: ",
                           Transports(**cl), ")")
            : absl::StrCat(backend, ": transfer backend ", c.transfer, ", ", env,
                           "transports used: ", Transports(**cl)));
    (*cl)->Stop();
  }
  // Again with the cluster gone, pooled with the first round (MergeBaseline).
  if (measure_baseline) MeasureBaselineRound(o, backend, cells, "after", context);
  return absl::OkStatus();
}

}  // namespace

absl::Status RunServingBench(const ServingBenchOptions& options) {
  const int64_t run_start = MonotonicNanos();
  ServingBenchOptions o = options;
  SweepRun sweep;
  ServingReportContext context;
  if (!options.resume_dir.empty()) {
    ASSIGN_OR_RETURN(ResumedSweep resumed, LoadSweep(options.resume_dir));
    o = resumed.options;
    context = std::move(resumed.context);
    sweep.runs = std::move(resumed.runs);
    sweep.transports = std::move(resumed.transports);
    std::printf("resuming %s: %zu runs finished before (%s)\n", o.result_dir.c_str(),
                sweep.runs.size(), o.command_line.c_str());
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
    if (o.backends == ServingBenchOptions{}.backends) o.backends = {"local", "ucx", "colocated"};
    // Device memory is plentiful: room for every request of the quick sweep at once.
    if (o.pool_gib == ServingBenchOptions{}.pool_gib) o.pool_gib = 8;
  }
  // Everything is checked before the first baseline or cluster starts: a bad backend name must
  // not surface after the others have run.
  RETURN_IF_ERROR(ValidateServingOptions(o));
  ASSIGN_OR_RETURN(SweepPlan plan, ResolveSweep(o.matrix, o.device == "cuda",
                                                {o.input_lens, o.output_lens, o.rates,
                                                 o.cell_seconds, o.min_prompts, o.max_prompts}));
  ASSIGN_OR_RETURN(ModelConfig config, PresetConfig(o.preset));
  std::optional<RooflineModel> roofline;
  if (o.compute == "roofline") {
    ASSIGN_OR_RETURN(GpuSpec gpu, GpuSpecByName(o.gpu));
    roofline.emplace(config, gpu);
  }
  std::vector<CellPlan> planned = PlanCells(plan, roofline ? &*roofline : nullptr);
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

  CapacityOptions copts = DefaultCapacityOptions();
  if (!o.slo.empty()) {
    ASSIGN_OR_RETURN(copts.slos, loadgen::ParseSloSpec(o.slo));
  }
  std::vector<WorkloadCapacity> capacities;
  if (o.find_capacity) {
    if (context.sweep.contains("capacities")) {  // --resume: found before the interruption
      capacities = CapacitiesFromJson(context.sweep["capacities"]);
    } else {
      const size_t workloads = plan.input_lens.size() * plan.output_lens.size();
      // About 8 probes a search (doubling from 0.5 req/s to a few req/s, then 3 bisections).
      const double guess_s = static_cast<double>(workloads * o.backends.size()) * 8 *
                             (copts.probe_seconds + 1.5);
      std::printf("capacity search first: %zu workloads x %zu backends, about %.0f min (ETA %s)\n",
                  workloads, o.backends.size(), guess_s / 60, ClockIn(guess_s).c_str());
      std::fflush(stdout);
      const int64_t t0 = MonotonicNanos();
      ASSIGN_OR_RETURN(capacities, FindCapacities(o, copts, planned, decode_blocks, dir));
      sweep.setup_s += Seconds(t0);
    }
    const std::string baseline = TransferBaselineLabel(o.backends, o.device);
    planned = PlanCells(plan, roofline ? &*roofline : nullptr, [&](int in, int out) {
      return RatesWithCapacity(plan.rates, CapacityOf(capacities, baseline, in, out),
                               copts.fractions);
    });
  }
  std::vector<CellPlan> cells = planned;
  double planned_s = 0;
  for (const CellPlan& c : planned) planned_s += c.expected_s;
  const std::string compute =
      o.compute == "roofline" ? absl::StrCat("roofline (", o.gpu, ")") : o.compute;
  SweepProgress progress(planned, static_cast<int>(o.backends.size()));
  for (const std::string& b : o.backends) {
    for (const CellPlan& c : planned) {
      if (FindRun(sweep.runs, BackendLabel(b, o.device), c) != nullptr) progress.CellDone(c, -1);
    }
  }
  std::printf(
      "pdserve bench (%s, load over %s): backends %s, preset %s, compute %s, %d prefill + %d "
      "decode, inputs %s, outputs %s, rates %s req/s; %zu cells per backend, %.1f min for all "
      "backends at the modelled speed; with cluster starts and baselines about %.1f min "
      "(ETA %s)\n",
      plan.name.c_str(), o.api.c_str(), absl::StrJoin(o.backends, ",").c_str(), o.preset.c_str(),
      compute.c_str(), o.num_prefill, o.num_decode, absl::StrJoin(plan.input_lens, ",").c_str(),
      absl::StrJoin(plan.output_lens, ",").c_str(), absl::StrJoin(plan.rates, ",").c_str(),
      cells.size(), planned_s * o.backends.size() / 60, progress.RemainingSeconds() / 60,
      ClockIn(progress.RemainingSeconds()).c_str());
  if (!device.empty()) std::printf("device: %s\n", device.c_str());
  std::fflush(stdout);

  if (o.device != "cpu") context.transfer_baseline_note = "not measured with --device cuda";
  if (!o.transfer_baseline) context.transfer_baseline_note = "--transfer-baseline false";
  if (context.date.empty()) context.date = Now("%Y-%m-%d %H:%M:%S %Z");
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
  absl::StrAppend(&context.cluster,
                  o.stream_chunk_tokens > 0
                      ? absl::StrFormat("; KV streamed during the prefill in chunks of %d tokens",
                                        o.stream_chunk_tokens)
                      : std::string("; KV sent whole after the prefill"));
  if (std::any_of(o.backends.begin(), o.backends.end(), IsColocated)) {
    // The same devices, used the other way: a colocated worker per P/D worker.
    absl::StrAppend(
        &context.cluster,
        absl::StrFormat("; colocated: %d colocated workers (as many devices as the P/D cluster's "
                        "%d + %d workers), prefill and decode taking turns on each worker's one "
                        "device and one %.2f GiB pool, no KV transfer",
                        o.num_prefill + o.num_decode, o.num_prefill, o.num_decode, decode_gib));
  }
  context.command = o.command_line;
  context.device = device;
  context.baseline = TransferBaselineLabel(o.backends, o.device);
  context.slo = o.slo;
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
  const bool resumed = !options.resume_dir.empty();
  // Called after every cell and at the end: report-inputs.json (what --resume reads) and the
  // report so far.
  auto write_report = [&](bool final, std::string* headline) -> absl::Status {
    double cells_s = 0;
    for (const ServingRun& r : sweep.runs) cells_s += r.usage.wall_s;
    context.timing = absl::StrFormat(
        "%.1f min in all%s: cells %.1f min (%.1f min at the modelled speed), transfer "
        "baselines, cluster starts and warm-ups %.1f min%s",
        Seconds(run_start) / 60, resumed ? " since --resume" : "", cells_s / 60,
        planned_s * o.backends.size() / 60, sweep.setup_s / 60,
        final ? "" : absl::StrFormat("; partial: %d of %d cells", progress.done(),
                                     progress.total()));
    context.backends = absl::StrJoin(sweep.transports, "; ");
    context.sweep = SweepOptionsToJson(o);
    context.sweep["transports"] = sweep.transports;
    if (o.find_capacity) {
      context.sweep["capacities"] = CapacitiesToJson(capacities);
      context.sweep["slos"] = DescribeSlos(copts.slos);
    }
    context.draw_plots = final;
    // The report first (it computes the colocated ratios that report-inputs.json keeps), but
    // report-inputs.json, which --resume needs, is written even when the report is not.
    nlohmann::json colocated_ratios;
    const absl::Status report =
        WriteServingReport(dir, context, sweep.runs, headline, &colocated_ratios);
    RETURN_IF_ERROR(WriteServingReportInputs(dir, context, sweep.runs, colocated_ratios));
    return report;
  };
  sweep.progress = &progress;
  sweep.start_ns = run_start;
  sweep.refresh = [&] {
    std::string ignored;
    if (absl::Status s = write_report(false, &ignored); !s.ok()) {
      std::printf("        report not refreshed: %s\n", std::string(s.message()).c_str());
    }
  };
  for (const std::string& user_backend : o.backends) {
    RETURN_IF_ERROR(RunBackend(o, user_backend, planned, cells,
                               /*adapt=*/&user_backend == &o.backends.front(), plan.cell_seconds,
                               plan.min_prompts, decode_blocks, dir, context, sweep));
  }
  std::string headline;
  RETURN_IF_ERROR(write_report(true, &headline));
  int failed = 0;
  for (const ServingRun& r : sweep.runs) failed += !r.error.empty();
  std::printf("\nreport: %s/report.md (%s)\n%s\n", dir.c_str(), context.timing.c_str(),
              headline.c_str());
  if (failed > 0) {
    return absl::InternalError(
        absl::StrCat(failed, " of ", sweep.runs.size(), " runs failed; see ", dir, "/report.md"));
  }
  return absl::OkStatus();
}

}  // namespace pdserve::bench
