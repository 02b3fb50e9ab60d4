#include "bench/serving_plan.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace pdserve::bench {

absl::StatusOr<SweepPlan> ResolveSweep(const std::string& matrix, bool cuda,
                                       const SweepOverrides& o) {
  SweepPlan p;
  if (matrix == "full" || matrix == "default") {
    // The seed matrix. 27 cells per backend at about 11 s each: the four default backends
    // (three transfers and colocated) in under 20 minutes on a 2-core host, cluster starts and
    // transfer baselines included (12 s cells took 20.8 min, docs/results/
    // cpu-2core-2026-12-04-matrix-alone).
    p = {.name = "full",
         .input_lens = {128, 512, 2048},
         .output_lens = {64, 128, 512},
         .rates = {1, 4, 16},
         .cell_seconds = 11,
         .min_prompts = 6,
         .max_prompts = 48};
  } else if (matrix == "quick") {
    // Short and long prompts (the KV transfer plot needs both ends), all three rates: 6 cells
    // per backend at about 6 s each, about 3 minutes for three backends.
    p = {.name = "quick",
         .input_lens = {128, 2048},
         .output_lens = {64},
         .rates = {1, 4, 16},
         .cell_seconds = 6,
         .min_prompts = 4,
         .max_prompts = 32};
    if (cuda) {
      p.input_lens = {512, 2048};
      p.output_lens = {128};
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown --matrix '", matrix, "' (full, quick)"));
  }
  if (!o.input_lens.empty()) p.input_lens = o.input_lens;
  if (!o.output_lens.empty()) p.output_lens = o.output_lens;
  if (!o.rates.empty()) p.rates = o.rates;
  if (o.cell_seconds > 0) p.cell_seconds = o.cell_seconds;
  if (o.min_prompts > 0) p.min_prompts = o.min_prompts;
  if (o.max_prompts > 0) p.max_prompts = o.max_prompts;
  if (p.min_prompts > p.max_prompts) {
    return absl::InvalidArgumentError(
        absl::StrCat("--min-prompts ", p.min_prompts, " is above --max-prompts ", p.max_prompts));
  }
  return p;
}

double ModelledTailSeconds(const RooflineModel* model, int input_len, int output_len, double rate) {
  if (model == nullptr) return 0.5;
  const std::vector<int> prompt = {input_len};
  const int mid = input_len + output_len / 2;  // the mean sequence length while decoding
  auto e2e = [&](int batch) {
    const std::vector<int> seqs(static_cast<size_t>(std::max(1, batch)), mid);
    return model->PrefillSeconds(prompt) + output_len * model->DecodeStepSeconds(seqs);
  };
  const double alone = e2e(1);
  if (std::isinf(rate)) return alone;
  // One fixed-point step of Little's law is close enough for a budget.
  return e2e(static_cast<int>(std::ceil(rate * alone)));
}

int PromptsFor(double rate, double cell_seconds, double tail_s, int min_prompts, int max_prompts) {
  if (std::isinf(rate)) return max_prompts;
  const double window = std::max(cell_seconds - tail_s, cell_seconds / 3);
  const long n = std::lround(rate * window);
  return static_cast<int>(std::clamp<long>(n, min_prompts, max_prompts));
}

std::vector<CellPlan> PlanCells(const SweepPlan& plan, const RooflineModel* model) {
  return PlanCells(plan, model, nullptr);
}

std::vector<CellPlan> PlanCells(const SweepPlan& plan, const RooflineModel* model,
                                const std::function<std::vector<double>(int, int)>& rates_for) {
  std::vector<CellPlan> cells;
  for (int in : plan.input_lens) {
    for (int out : plan.output_lens) {
      for (double rate : rates_for ? rates_for(in, out) : plan.rates) {
        CellPlan c{.input_len = in, .output_len = out, .rate = rate};
        c.tail_s = ModelledTailSeconds(model, in, out, rate);
        c.prompts =
            PromptsFor(rate, plan.cell_seconds, c.tail_s, plan.min_prompts, plan.max_prompts);
        c.expected_s = (std::isinf(rate) ? 0 : c.prompts / rate) + c.tail_s;
        cells.push_back(c);
      }
    }
  }
  return cells;
}

int AdaptedPrompts(const CellPlan& next, const CellPlan& previous, const CellOutcome& outcome,
                   double cell_seconds, int min_prompts) {
  if (outcome.wall_s <= 1.5 * previous.expected_s || outcome.request_throughput <= 0) {
    return next.prompts;
  }
  const double window = std::max(cell_seconds - outcome.mean_e2el_s, cell_seconds / 3);
  const long n = std::lround(outcome.request_throughput * window);
  return static_cast<int>(std::clamp<long>(n, std::min(min_prompts, next.prompts), next.prompts));
}

double DecodePoolGib(const ModelConfig& config, int max_input, int max_output, int concurrent,
                     double floor_gib, double cap_gib) {
  const double per_request = static_cast<double>(config.BlocksForTokens(max_input + max_output)) *
                             static_cast<double>(config.KvBytesPerBlock());
  const double want = concurrent * per_request / (1024.0 * 1024.0 * 1024.0);
  return std::max(floor_gib, std::min(want, cap_gib));
}

}  // namespace pdserve::bench
