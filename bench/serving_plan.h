#pragma once

// What `pdserve bench` runs: the matrix (workloads x request rates), how many prompts each cell
// sends so that the whole sweep fits its time budget, and how large the decode pool must be for
// the biggest cells. Plain functions over plain data, so the choices are tested without
// clusters.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/roofline.h"

namespace pdserve::bench {

struct SweepPlan {
  std::string name;  // "full" (the seed matrix, the default) or "quick"
  std::vector<int> input_lens, output_lens;
  std::vector<double> rates;
  double cell_seconds = 11;  // time budget of one cell: arrivals + the last request's tail
  int min_prompts = 6;
  int max_prompts = 48;
};

// `matrix`: "full" (also "default") = input 128/512/2048 x output 64/128/512 x 1/4/16 req/s,
// 12 s a cell; "quick" = input 128/2048 x output 64, the same rates, 6 s a cell. On the GPU
// (`cuda`) quick is input 512/2048 x output 128. Non-empty overrides replace the matrix's lists;
// cell_seconds / min / max prompts <= 0 keep the matrix's.
struct SweepOverrides {
  std::vector<int> input_lens, output_lens;
  std::vector<double> rates;
  double cell_seconds = 0;
  int min_prompts = 0;
  int max_prompts = 0;
};
absl::StatusOr<SweepPlan> ResolveSweep(const std::string& matrix, bool cuda,
                                       const SweepOverrides& overrides);

struct CellPlan {
  int input_len = 0;
  int output_len = 0;
  double rate = 0;
  int prompts = 0;
  double tail_s = 0;      // modelled time from the last arrival until it finishes
  double expected_s = 0;  // arrivals + tail, at the modelled speed
};

// The time one request takes at the modelled speed once it arrived: prefill + output_len decode
// steps, in a decode batch as large as Little's law gives at `rate` (rate x that time). Without
// a model (compute real or cuda) a flat 0.5 s.
double ModelledTailSeconds(const RooflineModel* model, int input_len, int output_len, double rate);

// Prompts of one cell: its arrivals spread over the budget less the tail, at least a third of
// the budget: clamp(round(rate x max(cell_seconds - tail, cell_seconds / 3)), min, max). An
// infinite rate sends max prompts at once.
int PromptsFor(double rate, double cell_seconds, double tail_s, int min_prompts, int max_prompts);

// Every cell in run order: input, then output, then rate.
std::vector<CellPlan> PlanCells(const SweepPlan& plan, const RooflineModel* model);
// The same with each workload's rates from `rates_for(input_len, output_len)` (the fixed rates
// and fractions of a measured capacity, bench/capacity.h); null: plan.rates.
std::vector<CellPlan> PlanCells(const SweepPlan& plan, const RooflineModel* model,
                                const std::function<std::vector<double>(int, int)>& rates_for);

// What a finished cell says about the host's pace.
struct CellOutcome {
  double wall_s = 0;              // the measured requests, first send to last finish
  double request_throughput = 0;  // completed / duration, req/s
  double mean_e2el_s = 0;
};

// The next cell of the same workload on the same cluster (a higher rate), given the cell before
// it: when that cell took more than 1.5x its planned time, the host could not keep the modelled
// pace, and at the next rate the queue would take n / throughput to drain. Its prompts then
// shrink to what the measured throughput finishes within the budget:
// clamp(round(throughput x max(cell_seconds - mean E2E, cell_seconds / 3)), min, max), never
// more than planned. Otherwise the plan stands. Such cells are host-bound in the report anyway;
// this keeps them from eating the sweep's time.
int AdaptedPrompts(const CellPlan& next, const CellPlan& previous, const CellOutcome& outcome,
                   double cell_seconds, int min_prompts);

// The decode worker's pool: room for `concurrent` requests of the sweep's largest cell (prompt +
// output positions are reserved at admission), within [floor_gib, cap_gib]. Requests beyond it
// wait at the router (FCFS) until blocks are free: they queue, they do not fail.
double DecodePoolGib(const ModelConfig& config, int max_input, int max_output, int concurrent,
                     double floor_gib, double cap_gib);

}  // namespace pdserve::bench
