#include "bench/serving_report.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/capacity.h"
#include "bench/capacity_phase.h"
#include "bench/colocated_analysis.h"
#include "bench/serving_analysis.h"
#include "bench/serving_backends.h"
#include "bench/serving_plots.h"
#include "bench/serving_report_tables.h"
#include "common/status_macros.h"

namespace pdserve::bench {
namespace {

// summary.csv: one row per cell, the report's main numbers, the verdict and the settings.
constexpr const char* kSummaryFields[] = {"completed",
                                          "failed",
                                          "mean_ttft_ms",
                                          "median_ttft_ms",
                                          "p99_ttft_ms",
                                          "mean_tpot_ms",
                                          "median_tpot_ms",
                                          "p99_tpot_ms",
                                          "p99_itl_ms",
                                          "p99_e2el_ms",
                                          "request_throughput",
                                          "request_goodput",
                                          "output_throughput",
                                          "mean_kv_transfer_ms",
                                          "p99_kv_transfer_ms",
                                          "kv_transfer_gbps",
                                          "kv_transfer_share_of_ttft",
                                          "mean_kv_bytes",
                                          "mean_transfer_ops",
                                          "mean_queue_ms",
                                          "mean_prefill_ms",
                                          "mean_modelled_prefill_ms",
                                          "mean_prefill_mock_cpu_ms",
                                          "mean_modelled_first_step_ms",
                                          "mean_decode_verify_cpu_ms",
                                          "mean_control_plane_ms",
                                          "mean_first_step_ms",
                                          "mean_ttft_model_ms",
                                          "mean_ttft_stage_queue_ms",
                                          "mean_ttft_stage_allocate_ms",
                                          "mean_ttft_stage_dispatch_ms",
                                          "mean_ttft_stage_prefill_ms",
                                          "mean_ttft_stage_kv_transfer_ms",
                                          "mean_ttft_stage_decode_admit_ms",
                                          "mean_ttft_stage_first_step_ms",
                                          "mean_ttft_stage_relay_ms",
                                          "mean_ttft_stage_other_ms",
                                          "ttft_to_model_ratio",
                                          "p99_send_lag_ms",
                                          "max_send_lag_ms"};

std::string CsvQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

absl::Status WriteSummaryCsv(const std::string& dir, const std::vector<CellAnalysis>& cells,
                             const std::vector<RequestTransferBaseline>& baselines) {
  std::ofstream csv(dir + "/summary.csv");
  csv << "backend,input_len,output_len,request_rate";
  for (const char* f : kSummaryFields) csv << "," << f;
  csv << ",microbench_kv_transfer_ms,mean_kv_transfer_alone_ms,kv_transfers_alone,kv_transfers_placed"
         ",cell_seconds,host_bound,host_reasons,result_file,error,kv_transfers_starved,"
         "kv_transfer_starved_miss\n";
  for (const CellAnalysis& c : cells) {
    const ServingRun& r = *c.run;
    csv << r.backend << "," << r.input_len << "," << r.output_len << ","
        << RateName(r.request_rate);
    for (const char* f : kSummaryFields) csv << "," << ResultNumber(r.result, f);
    const RequestTransferBaseline* b = BaselineFor(r, baselines);
    // The microbenchmark figure the serving run is held to (RequestTransferBaseline::Reference).
    const double wait_share = b != nullptr ? b->WaitShare() : 0.0;
    csv << "," << (b != nullptr ? b->Reference() : NAN) << "," << AloneTransferMean(c.samples)
        << "," << c.samples.transfer_alone_ms.size() << "," << c.samples.transfers_placed << ","
        << (r.usage.measured ? r.usage.wall_s : NAN) << "," << (c.verdict.host_bound ? 1 : 0) << ","
        << CsvQuote(absl::StrJoin(c.verdict.reasons, "; ")) << "," << r.result_file << ","
        << CsvQuote(r.error) << "," << StarvedTransfers(c.samples, wait_share) << ","
        << (b != nullptr && JudgeTransfer(c.samples, *b, kTransferBaselineTarget).starved_miss ? 1
                                                                                               : 0)
        << "\n";
  }
  if (!csv) return absl::InternalError(absl::StrCat("cannot write ", dir, "/summary.csv"));
  return absl::OkStatus();
}

constexpr char kDefinitions[] =
    "Metric definitions follow `vllm bench serve`: TTFT = time to the first token-carrying "
    "chunk; TPOT = (E2E - TTFT) / (output tokens - 1); ITL = every gap between token chunks, "
    "pooled; percentiles linearly interpolated. KV transfer times are server-side (prefill "
    "worker: Submit until Wait returned), GB/s = KV bytes / transfer time.\n\n"
    "**Control-plane overhead** (per request) = the server's gaps on the TTFT path, arrival -> "
    "prefill start (router queue and dispatch: at 1 req/s this is the scheduling and the "
    "Prefill RPC; the queue column shows how much of it was waiting), prefill end -> transfer "
    "start, transfer end -> decode join, plus the client <-> router legs (client TTFT - server "
    "TTFT). **TTFT model** = modelled prefill + measured KV transfer + control-plane overhead + "
    "modelled first decode step, over the requests that report all of them; the target is mean "
    "TTFT within 15% of it at 1 req/s. The engines report modelled times and the mock's CPU time "
    "per request (K/V generation on the prefill worker, KV verification on the decode worker); a "
    "value they leave at 0 is shown as \"-\" (not reported), never as 0.\n\n"
    "**Backend differences**: for each cell, mean(backend) - mean(baseline) of per-request TTFT "
    "and KV transfer time, with a 95% percentile bootstrap interval (2000 resamples of each "
    "cell's successful requests with replacement, fixed seed). \"No difference within noise\" "
    "when the interval spans zero. A TTFT difference is \"explained by the KV transfer\" when the "
    "transfer difference has the same sign, excludes zero and is at least half as large.\n\n";

// What colocated is, how each P/D cell is set against it, then the pairs.
std::string ColocatedSection(const ServingReportContext& context, const loadgen::SloSpec& slos,
                             const std::vector<ColocatedComparison>& comparisons) {
  const bool default_slos = context.slo.empty();
  return absl::StrCat(
      "## P/D against colocated\n\n`colocated` is not a transfer backend but the other "
      "deployment: as many colocated workers as the P/D cluster has prefill + decode workers "
      "(the same number of devices), each prefilling and decoding on its one device and its "
      "one KV pool (the decode pool's size), prefill batches and decode steps taking turns; no "
      "KV moves. Its cells ran the same prompts at the same arrival times (the same seeds) as "
      "every P/D backend's. Per cell, P/D / colocated: above 1, P/D is slower. Intervals: 95% "
      "percentile bootstrap of the ratio, 2000 resamples drawing each cell's successful "
      "requests with replacement, the two cells independently (fixed seed). TPOT per request "
      "= (E2E - TTFT) / (output tokens - 1). Goodput = requests within every SLO / the run's "
      "duration (as `vllm bench serve --goodput`), SLOs: ",
      DescribeSlos(slos),
      default_slos ? " (the bench's default: no --slo given)" : " (--slo)",
      ". Cells that failed, are host-bound or unverified are marked and left out of the "
      "summary line. Also in `colocated_ratios.csv` and report-inputs.json "
      "(`colocated_ratios`).\n\n",
      ColocatedTable(comparisons));
}

}  // namespace

double ResultNumber(const nlohmann::json& result, const std::string& field) {
  auto it = result.find(field);
  if (it == result.end() || !it->is_number()) return std::nan("");
  return it->get<double>();
}

absl::Status WriteServingReport(const std::string& dir, const ServingReportContext& context,
                                const std::vector<ServingRun>& runs, std::string* headline,
                                nlohmann::json* colocated_ratios) {
  const HostBoundRules rules;
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, rules);
  const std::vector<Comparison> comparisons = CompareBackends(cells, context.baseline);
  RETURN_IF_ERROR(WriteSummaryCsv(dir, cells, context.transfer_baselines));
  const bool have_colocated = std::any_of(runs.begin(), runs.end(), [](const ServingRun& r) {
    return IsColocated(r.backend);
  });
  const loadgen::SloSpec slos = SweepSlos(context.slo);
  const std::vector<ColocatedComparison> colocated =
      have_colocated ? CompareWithColocated(cells, slos) : std::vector<ColocatedComparison>{};
  std::string colocated_summary;
  if (have_colocated) {
    colocated_summary = ColocatedSummary(colocated);
    std::ofstream csv(dir + "/colocated_ratios.csv");
    csv << ColocatedCsv(colocated, slos);
    if (!csv) return absl::InternalError(absl::StrCat("cannot write ", dir, "/colocated_ratios.csv"));
    if (colocated_ratios != nullptr) *colocated_ratios = ColocatedJson(colocated, slos);
  }

  std::string plots_note;
  std::vector<std::pair<std::string, std::string>> drawn;
  if (!context.draw_plots) {
    plots_note = "Drawn when the sweep ends.\n";
  } else if (HaveGnuplot()) {
    if (absl::Status s = WriteServingPlots(dir, cells, context.transfer_baselines, &drawn);
        !s.ok()) {
      plots_note = absl::StrCat("Plots could not be drawn: ", s.message(), "\n");
    }
  } else {
    plots_note = "gnuplot is not installed: no plots were drawn (apt-get install gnuplot-nox).\n";
  }
  *headline = Headline(cells, comparisons, context.baseline);
  const std::string transfer_headline = *headline;
  if (have_colocated) absl::StrAppend(headline, "\n", colocated_summary);

  std::ofstream md(dir + "/report.md");
  md << "# pdserve serving benchmark: KV transfer backends"
     << (have_colocated ? " and P/D against colocated" : "")
     << " across workloads and request rates\n\n";
  md << "- date: " << context.date << "\n- preset: " << context.preset
     << "\n- compute: " << context.compute << "\n- cluster: " << context.cluster;
  if (!context.device.empty()) md << "\n- device: " << context.device;
  md << "\n- command: `" << context.command << "`\n";
  if (!context.backends.empty()) md << "- backends: " << context.backends << "\n";
  if (!context.choices.empty()) md << "- sweep: " << context.choices << "\n";
  if (!context.timing.empty()) md << "- timing: " << context.timing << "\n";
  md << "\n**Headline** (cells that are not host-bound only; baseline " << context.baseline
     << "): " << transfer_headline << "\n\n";
  if (have_colocated) {
    md << "**P/D against colocated** (cells that are not host-bound only; P/D / colocated, 95% "
          "bootstrap interval): "
       << colocated_summary << "\n\n";
  }
  md << "- TTFT model: " << TtftModelSummary(cells, kTtftModelTolerance) << "\n";
  md << "- KV transfer vs the same-run microbenchmark: "
     << (context.transfer_baselines.empty()
             ? absl::StrCat("not measured", context.transfer_baseline_note.empty() ? "" : ": ",
                            context.transfer_baseline_note)
             : TransferBaselineSummary(cells, context.transfer_baselines, kTransferBaselineTarget))
     << "\n\n"
     << kDefinitions;
  md << "## Results per cell\n\n"
     << absl::StrFormat(
            "Error bars: each cell's TTFT mean and p99 come with a 95%% percentile bootstrap "
            "interval over its successful requests (2000 resamples, fixed seed); the TTFT plot "
            "draws the p50's. A p99 rests on at least one request above it only from %d "
            "requests on: cells with fewer (n shown) report a p99 that is close to their "
            "maximum, and its interval is wide for that reason. Backend differences use the "
            "same bootstrap (below).\n\n",
            kP99MinRequests)
     << ResultsTable(cells);
  md << "\nPer-run JSON (vllm field names, pdserve's `kv_*` and mock-accounting extras, "
        "per-request arrays) and per-request CSV: `<backend>_in<I>_out<O>_rate<R>.json/.csv`. "
        "Summary: `summary.csv`.\n\n";
  md << "## Host-bound cells\n\nA host-bound cell measured this host, not the modelled system: it "
        "is kept out of the headline. Rules: "
     << DescribeRules(rules) << ". Cores = CPU seconds / cell seconds.\n\n"
     << HostTable(cells, context.decode_pool_gib, context.preset);
  if (context.sweep.is_object() && context.sweep.contains("capacities")) {
    md << "\n"
       << CapacitySection(context.sweep["capacities"], context.sweep.value("slos", ""),
                          context.baseline);
  }
  md << "\n## The mock's own work and the TTFT model\n\nMeans per request (ms). \"engine mock CPU "
        "/ modelled\" is the workers' K/V generation (prefill) and verification (decode) CPU "
        "time over their modelled device time in the cell: near or above 1, the mock's own work "
        "sets the pace.\n\n"
     << AccountingTable(cells);
  md << "\n## Where TTFT goes\n\nMeans per request (ms) of the stages that partition the "
        "router's TTFT (arrival -> first token relayed to the client's stream), the same split "
        "as the router's `pdserve:ttft_stage_seconds` histograms; each stage's start and end "
        "event is in README's Metrics section. \"other\" is what is left of the client's TTFT "
        "(the client <-> router legs), so a row adds up to the mean TTFT of the requests it "
        "covers (those whose timeline has every event). Bounds on a worker's clock are clamped "
        "so that no stage is negative; one host has one clock. `ttft_breakdown.png` stacks "
        "these.\n\n"
     << TtftStagesTable(cells);
  md << "\n## KV transfer: serving vs the same-run microbenchmark\n\n";
  if (context.transfer_baselines.empty()) {
    md << "Not measured" << (context.transfer_baseline_note.empty() ? "" : ": ")
       << context.transfer_baseline_note << ".\n";
  } else {
    md << "Before each backend's cluster starts and again after it stopped (the two rounds "
          "pooled, so that a transient during one of them does not set every cell's yardstick), "
          "`pdserve bench transfer`'s two-process set-up moves one request's KV (same preset, layout and blocks per request; destination "
          "blocks in shuffled runs of 8) one transfer at a time, timed like the prefill worker "
          "times a request (Submit until Wait returned), after one warm-up transfer, for at "
          "least 0.3 s and 5 transfers per round, twice: back to back (warm: a 16 MiB request's source "
          "and destination stay in this host's 32 MiB last-level cache, as in `pdserve bench "
          "transfer`), and cold, with 64 MiB written and a 3 ms pause before each transfer (a "
          "serving request's KV meets caches that other work has used, and a transport that "
          "sat idle). The serving run's mean is held to the cold median (a few cold ucx transfers "
          "take 10-100x the others and make a mean of 17 swing); ucx runs pin the sender and the receiver to two CPUs "
          "as `pdserve bench transfer` does (the serving workers are not pinned). The same "
          "bytes can take more operations in serving, where both pools' allocators scatter a "
          "request's blocks: compare the ops columns. The microbenchmark moves one request's "
          "KV at a time; in a serving run requests that arrive close together (Poisson "
          "arrivals, one prefill batch) send their KV at the same time through the same "
          "workers. \"alone\" counts the transfers that no other transfer through the same "
          "prefill or decode worker overlapped (each placed on the load generator's clock: "
          "request start + the TTFT stages up to the end of kv_transfer, minus its transfer "
          "time), and only their mean is held to the microbenchmark; \"serving mean\" is over "
          "every transfer, so the two columns apart are what sharing the workers cost. A "
          "transfer alone whose copy threads waited for a core (runnable, but the host ran "
          "other work) for a share of its time 25 points above the microbenchmark's median "
          "measured the host (\"starved\" column; local: its copy threads; ucx: the sender's "
          "progress thread, plus the receiver's for tcp data, which it copies in; cuda-ipc "
          "reports none): a cell above the target whose other transfers alone are within it is "
          "set apart as host-bound. Target: "
          "the alone mean within 1.5x of the microbenchmark's, in cells that are not "
          "host-bound and have at least 3 transfers alone.\n\n"
       << TransferTable(cells, context.transfer_baselines);
  }
  md << "\n## Backends against " << context.baseline << "\n\n" << ComparisonTable(comparisons);
  if (have_colocated) md << "\n" << ColocatedSection(context, slos, colocated);
  md << "\n## Plots\n\n";
  if (!plots_note.empty()) md << plots_note;
  for (const auto& [png, caption] : drawn) md << "![" << caption << "](" << png << ")\n\n";
  if (!md) return absl::InternalError(absl::StrCat("cannot write ", dir, "/report.md"));
  return absl::OkStatus();
}

}  // namespace pdserve::bench
