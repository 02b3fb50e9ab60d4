#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/host_bound.h"
#include "bench/request_transfer_baseline.h"
#include "nlohmann/json.hpp"

namespace pdserve::bench {

// One load run of the serving benchmark: one cluster (transfer backend) at one request rate.
struct ServingRun {
  std::string backend;  // transfer backend, e.g. "local", "ucx", "ucx-tcp"
  int input_len = 0;
  int output_len = 0;
  double request_rate = 0;  // requests/s; infinity for "inf"
  std::string result_file;  // the run's JSON, relative to the results folder
  nlohmann::json result;    // loadgen's result object (vllm bench serve field names), with
                            // the per-request arrays (the bootstrap resamples them)
  std::string error;        // non-empty: the run (or its cluster) failed; reported, not hidden
  CellUsage usage;          // what the cell cost the host (usage.measured false: not sampled)
  int planned_prompts = 0;  // before AdaptedPrompts (bench/serving_plan.h); 0: not recorded
  int prompts = 0;          // sent (after AdaptedPrompts); 0: not recorded
  uint64_t seed = 0;        // the load's seed (the same per cell for every backend)
};

struct ServingReportContext {
  std::string date;
  std::string preset;
  std::string compute;             // "real" or "roofline (h100)"
  std::string cluster;             // e.g. "1 prefill + 1 decode worker"
  std::string choices;             // what the default sweep chose and why
  std::string command;             // the command line that produced it
  std::string backends;            // per backend: what it is and the transports it used
  std::string device;              // the machine the workers computed on ("" for a CPU run)
  std::string baseline = "local";  // the backend the headline compares the others with
  std::string timing;              // how long the run took against its plan
  // The sweep's --slo ("ttft:MS", ...; empty: bench/capacity.h's default): goodput's SLOs.
  std::vector<std::string> slo;
  // Same-run microbenchmark of one request's KV per backend and prompt length; the note says
  // why there is none (e.g. on the GPU).
  std::vector<RequestTransferBaseline> transfer_baselines;
  std::string transfer_baseline_note;
  double decode_pool_gib = 0;  // per decode worker: cells that needed more queued for blocks
  // What `pdserve bench --resume` needs to continue the sweep (bench/serving_sweep.h): the
  // options it ran with and each backend's transports line. Kept as written, not read by the
  // report.
  nlohmann::json sweep;
  // false: report.md and summary.csv only (the refresh after each cell; gnuplot between cells
  // would run while the next cell's cluster is idle, but it is not needed until the end).
  bool draw_plots = true;
};

// Targets the report checks (issue 13).
inline constexpr double kTtftModelTolerance = 0.15;     // |mean TTFT / model - 1| at 1 req/s
inline constexpr double kTransferBaselineTarget = 1.5;  // serving / microbenchmark transfer time

// Writes summary.csv, report.md and the PNG plots (through gnuplot when installed; without it the
// report says so) into `dir`, and colocated_ratios.csv where colocated ran. `headline` receives
// the comparison printed at the end (one line, and a second for P/D against colocated);
// `colocated_ratios`, when given, the P/D-against-colocated pairs as report-inputs.json keeps
// them (bench/colocated_analysis.h).
absl::Status WriteServingReport(const std::string& dir, const ServingReportContext& context,
                                const std::vector<ServingRun>& runs, std::string* headline,
                                nlohmann::json* colocated_ratios = nullptr);

// Writes report-inputs.json into `dir`: the context and, per run, its settings, result file and
// error, so that RewriteServingReport can draw the report again elsewhere (say, plots on a
// machine with gnuplot after a GPU run on one without).
// `colocated_ratios` (from WriteServingReport) is kept for readers of the file; the report is
// drawn again from the runs.
absl::Status WriteServingReportInputs(const std::string& dir, const ServingReportContext& context,
                                      const std::vector<ServingRun>& runs,
                                      const nlohmann::json& colocated_ratios = nullptr);
// Reads `dir`/report-inputs.json and the per-run JSON it names.
absl::Status ReadServingReportInputs(const std::string& dir, ServingReportContext* context,
                                     std::vector<ServingRun>* runs);
// ReadServingReportInputs, then WriteServingReport.
absl::Status RewriteServingReport(const std::string& dir, std::string* headline);

// The value of `field` in a run's result, or NaN when absent or null.
double ResultNumber(const nlohmann::json& result, const std::string& field);

}  // namespace pdserve::bench
