#pragma once

// What the serving report concludes from the runs: which cells measured the modelled system
// (bench/host_bound.h), the per-request samples behind the means, each backend's differences
// from the baseline backend with bootstrap intervals (bench/bootstrap.h), and the headline that
// names a difference and its transport-level cause only where the cells allow it.

#include <cmath>
#include <string>
#include <vector>

#include "bench/bootstrap.h"
#include "bench/host_bound.h"
#include "bench/serving_report.h"

namespace pdserve::bench {

// Per-request values of a run's successful requests, from its result JSON's detailed arrays.
struct RequestSamples {
  std::vector<double> ttft_ms;
  // TPOT = (E2E - TTFT) / (output tokens - 1) of those with 2 or more output tokens (as
  // loadgen's TPOT distribution).
  std::vector<double> tpot_ms;
  std::vector<double> transfer_ms;  // those with a server timeline
  // Those whose transfer could be placed in time (bench/transfer_overlap.h), and of them the
  // ones no other transfer through the same workers overlapped: what the microbenchmark times.
  size_t transfers_placed = 0;
  std::vector<double> transfer_alone_ms;
  // Of each transfer alone: its copy threads' wait for a core / its time (WaitShare).
  std::vector<double> transfer_alone_wait_share;
  double mean_kv_bytes = 0;
  double mean_ops = 0;
};
RequestSamples SamplesOf(const nlohmann::json& result);

struct CellAnalysis {
  const ServingRun* run = nullptr;
  HostBoundVerdict verdict;
  RequestSamples samples;
  // 95% bootstrap intervals of the cell's own TTFT statistics (over its successful requests;
  // invalid below 2 requests).
  Difference ttft_mean_ci, ttft_p50_ci, ttft_p99_ci;
  // Measured, not host-bound and verified (HostBoundVerdict::unverified): the only cells the
  // headline and the targets use.
  bool usable() const { return run->error.empty() && !verdict.host_bound && !verdict.unverified; }
};

// A p99 rests on at least one request above it only from this many requests on; below it the
// p99 is interpolated between the largest values (a near-maximum), and the report says so.
inline constexpr int kP99MinRequests = 100;

std::vector<CellAnalysis> AnalyseCells(const std::vector<ServingRun>& runs,
                                       const HostBoundRules& rules);

// One cell of a backend against the same cell (workload, rate) of the baseline backend. Colocated
// runs are no transport: they are neither compared here nor named in the headline (see
// bench/colocated_analysis.h).
struct Comparison {
  const CellAnalysis* baseline = nullptr;
  const CellAnalysis* other = nullptr;
  MeanDifference ttft;      // other - baseline, ms
  MeanDifference transfer;  // other - baseline, ms
  bool comparable() const { return baseline->usable() && other->usable(); }
  // "KV transfer +1.234 ms [1.1, 1.3] for the same 16.0 MiB (8 vs 8 ops)" or, when the transfer
  // difference cannot explain the TTFT difference, what it is.
  std::string Cause() const;
};

std::vector<Comparison> CompareBackends(const std::vector<CellAnalysis>& cells,
                                        const std::string& baseline,
                                        const BootstrapOptions& options = {});

// One sentence per non-baseline backend, from comparable cells only (see Comparison).
std::string Headline(const std::vector<CellAnalysis>& cells,
                     const std::vector<Comparison>& comparisons, const std::string& baseline);

// The TTFT model check at 1 req/s and the serving / microbenchmark transfer ratio, summarised
// over usable cells ("not reported" where the numbers are missing).
std::string TtftModelSummary(const std::vector<CellAnalysis>& cells, double tolerance);
std::string TransferBaselineSummary(const std::vector<CellAnalysis>& cells,
                                    const std::vector<RequestTransferBaseline>& baselines,
                                    double target);

// The cell's mean KV transfer time over the transfers that ran alone; with
// `skip_starved_above` >= 0, only over those that were not starved of a core
// (bench/transfer_overlap.h, Starved, against that microbenchmark wait share). NaN below
// kMinAloneTransfers of them: too few to hold to the microbenchmark.
inline constexpr size_t kMinAloneTransfers = 3;
double AloneTransferMean(const RequestSamples& s, double skip_starved_above = -1);
// How many of the transfers alone were starved against the microbenchmark's wait share.
size_t StarvedTransfers(const RequestSamples& s, double baseline_wait_share = 0);

// One cell against the transfer target: the mean of its transfers alone over the
// microbenchmark's cold median. A cell above `target` whose starved transfers explain it (the
// others are within it, or too few are left to say) measured the host, not the transport: it
// is set apart like a host-bound cell, not counted as within.
struct TransferVerdict {
  double ratio = NAN;         // NaN: too few transfers alone
  bool starved_miss = false;  // above target, explained by starved transfers
  size_t starved = 0;
};
TransferVerdict JudgeTransfer(const RequestSamples& s, const RequestTransferBaseline& baseline,
                              double target);

// The same-run microbenchmark row for a run (same backend and prompt length), or nullptr.
const RequestTransferBaseline* BaselineFor(const ServingRun& run,
                                           const std::vector<RequestTransferBaseline>& baselines);

// "in2048/out64", "4" ("inf")
std::string WorkloadName(const ServingRun& r);
std::string RateName(double rate);

}  // namespace pdserve::bench
