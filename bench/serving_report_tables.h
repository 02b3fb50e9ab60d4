#pragma once

// The markdown tables of the serving report (report.md), one function per table. Numbers are
// printed with fixed formats from the run JSON, "-" where a value was not reported.

#include <string>
#include <vector>

#include "bench/serving_analysis.h"

namespace pdserve::bench {

// One number in a printf format of one double ("%.2f"); "-" for NaN (not reported). The format
// is a runtime string (absl::StrFormat wants a compile-time one).
std::string FormatNumber(const char* format, double v);

// A markdown table's header (with its separator line) and one of its rows, made one line.
std::string MarkdownHeader(const std::vector<std::string>& columns);
std::string MarkdownRow(const std::vector<std::string>& cells);

// Latency and throughput per cell, vllm field names (the smoke test reads these rows).
std::string ResultsTable(const std::vector<CellAnalysis>& cells);
// CPU per process, engine overruns, send lag and the host-bound verdict per cell.
std::string HostTable(const std::vector<CellAnalysis>& cells, double decode_pool_gib,
                      const std::string& preset);
// The mock's own CPU next to the modelled time, and the TTFT model check.
std::string AccountingTable(const std::vector<CellAnalysis>& cells);
// Where TTFT goes: the mean of each TTFT stage (common/ttft_stages.h), the client <-> router
// rest, their sum and the requests they cover, per cell (the numbers ttft_breakdown.png stacks).
std::string TtftStagesTable(const std::vector<CellAnalysis>& cells);
// The same-run microbenchmark rows, then serving / microbenchmark per cell.
std::string TransferTable(const std::vector<CellAnalysis>& cells,
                          const std::vector<RequestTransferBaseline>& baselines);
// Each backend against the baseline, per cell, with bootstrap intervals.
std::string ComparisonTable(const std::vector<Comparison>& comparisons);

}  // namespace pdserve::bench
