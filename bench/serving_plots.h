#pragma once

// The serving report's plots, drawn by gnuplot from data files written next to them:
//   ttft_vs_rate.png, tpot_vs_rate.png  p50 and p99 against the request rate, a panel per
//                                        workload, a colour per backend, host-bound or unverified
//                                        cells circled
//   kv_transfer_vs_prompt.png           mean KV transfer time against the prompt length at the
//                                        lowest rate, per backend, next to the same-run
//                                        microbenchmark of the same bytes
//   ttft_breakdown.png                  where mean TTFT goes: the TTFT stages of
//                                        common/ttft_stages.h and the client <-> router rest,
//                                        stacked per (backend, rate), a panel per workload

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "bench/serving_analysis.h"

namespace pdserve::bench {

bool HaveGnuplot();

// Draws the plots into `dir`; `drawn` receives (file, caption) of each PNG written.
absl::Status WriteServingPlots(const std::string& dir, const std::vector<CellAnalysis>& cells,
                               const std::vector<RequestTransferBaseline>& baselines,
                               std::vector<std::pair<std::string, std::string>>* drawn);

}  // namespace pdserve::bench
