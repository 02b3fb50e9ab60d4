#pragma once

// P/D against colocated (issue 15): every cell (workload, rate) of each P/D backend set against
// the same cell of the `colocated` backend (bench/serving_backends.h), which ran the same
// prompts at the same arrival times on as many devices. Ratios P/D / colocated of TTFT (p50,
// mean) and TPOT (p50) with percentile bootstrap intervals over the requests of both cells, and
// each cell's goodput under the sweep's SLOs. Plain functions over analysed cells, tested
// without clusters (tests/bench/colocated_analysis_test.cc).

#include <string>
#include <vector>

#include "bench/bootstrap.h"
#include "bench/serving_analysis.h"
#include "loadgen/metrics.h"
#include "nlohmann/json.hpp"

namespace pdserve::bench {

// Goodput as loadgen (and vllm bench serve --goodput) defines it: successful requests within
// every SLO / the run's duration. Counted from the run's per-request arrays, so that a folder
// written without SLOs in its runs gets it too.
struct CellGoodput {
  int good = 0;
  int completed = 0;
  double duration_s = 0;
  double PerSecond() const;   // NaN without a duration
  double Attainment() const;  // good / completed; NaN without completed requests
};
CellGoodput GoodputOf(const nlohmann::json& result, const loadgen::SloSpec& slos);

// One P/D cell against the colocated cell of the same workload and rate.
struct ColocatedComparison {
  const CellAnalysis* pd = nullptr;
  const CellAnalysis* colocated = nullptr;
  // P/D / colocated; invalid where a cell failed or has fewer than 2 samples.
  Ratio ttft_p50, ttft_mean, tpot_p50;
  CellGoodput pd_goodput, colocated_goodput;
  // Both cells measured, verified and not host-bound: the only pairs the summary uses.
  bool comparable() const { return pd->usable() && colocated->usable(); }
  // "" when comparable, else which cell is left out and why ("colocated cell host-bound").
  std::string Exclusion() const;
};

// Every P/D cell that has a colocated cell of the same workload and rate, in run order. Failed
// cells are paired too (their ratios invalid), so the report shows them.
std::vector<ColocatedComparison> CompareWithColocated(const std::vector<CellAnalysis>& cells,
                                                      const loadgen::SloSpec& slos,
                                                      const BootstrapOptions& options = {});

// The rate the summary line is about: 1 req/s where some pair ran at it (the target
// rate), else the lowest rate of any pair; NaN with no pairs.
double SummaryRate(const std::vector<ColocatedComparison>& comparisons);

// One line from comparable pairs at SummaryRate: "P/D TTFT p50 / colocated at 1 req/s: local
// 1.04x [1.01, 1.07] in512/out64 (TPOT p50 0.98x), ...; ucx-posix ...", then what was left
// out.
std::string ColocatedSummary(const std::vector<ColocatedComparison>& comparisons);

// "1.04x [1.01, 1.07]", or "-" for an invalid ratio.
std::string FormatRatio(const Ratio& r);

// The report's table, one row per pair.
std::string ColocatedTable(const std::vector<ColocatedComparison>& comparisons);

// The pairs as colocated_ratios.csv and as report-inputs.json's "colocated_ratios".
std::string ColocatedCsv(const std::vector<ColocatedComparison>& comparisons,
                         const loadgen::SloSpec& slos);
nlohmann::json ColocatedJson(const std::vector<ColocatedComparison>& comparisons,
                             const loadgen::SloSpec& slos);

}  // namespace pdserve::bench
