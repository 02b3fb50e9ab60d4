#include "common/roofline.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pdserve {

std::vector<std::string> GpuSpecNames() { return {"h100", "h200", "a100", "l40s"}; }

absl::StatusOr<GpuSpec> GpuSpecByName(std::string_view name) {
  // Datasheet peaks (dense bf16, HBM); efficiencies are typical achieved fractions.
  // h100: efficiencies measured on an H100 80GB HBM3 (docs/results/gpu-h100-2026-11-23.md):
  // cuBLAS bf16 GEMM 786-804 TFLOP/s = 0.79-0.81 of 989; decode-step weight reads of the llama3-8b dense
  // layers 2.57 TB/s and paged decode attention 2.5-2.7 TB/s = 0.76-0.80 of 3350 GB/s.
  if (name == "h100") return GpuSpec{"h100", 989.0, 3350.0, 0.81, 0.78, 20.0};
  if (name == "h200") return GpuSpec{"h200", 989.0, 4800.0, 0.70, 0.80, 20.0};
  if (name == "a100") return GpuSpec{"a100", 312.0, 2039.0, 0.70, 0.80, 20.0};
  if (name == "l40s") return GpuSpec{"l40s", 362.0, 864.0, 0.60, 0.80, 20.0};
  return absl::InvalidArgumentError(absl::StrCat("unknown GPU '", std::string(name),
                                                 "' (expected one of ",
                                                 absl::StrJoin(GpuSpecNames(), ", "), ")"));
}

RooflineModel::RooflineModel(const ModelConfig& config, const GpuSpec& gpu)
    : config_(config), gpu_(gpu) {}

double RooflineModel::ParameterCount() const {
  const double h = config_.hidden_size;
  const double kv = static_cast<double>(config_.num_kv_heads) * config_.head_dim;
  const double q = static_cast<double>(config_.num_q_heads) * config_.head_dim;
  const double attn = h * q + 2 * h * kv + q * h;      // Wq, Wk, Wv, Wo
  const double mlp = 3.0 * h * config_.intermediate_size;  // gate, up, down
  return config_.num_layers * (attn + mlp) + 2.0 * h * config_.vocab_size;
}

double RooflineModel::PrefillSeconds(std::span<const int> prompt_lens) const {
  double flops = 0;
  for (int n : prompt_lens) {
    flops += 2.0 * ParameterCount() * n;
    // Causal attention: QK^T and PV over n(n+1)/2 pairs per q head and layer.
    flops += 4.0 * n * (n + 1) / 2.0 * config_.head_dim * config_.num_q_heads * config_.num_layers;
  }
  const double weight_bytes = ParameterCount() * config_.ElementBytes();
  const double compute = flops / (gpu_.bf16_tflops * 1e12 * gpu_.flop_efficiency);
  const double memory = weight_bytes / (gpu_.hbm_gbps * 1e9 * gpu_.bw_efficiency);
  return std::max(compute, memory) + gpu_.step_overhead_us * 1e-6;
}

double RooflineModel::DecodeStepSeconds(std::span<const int> seq_lens) const {
  double flops = 0, kv_bytes = 0;
  for (int n : seq_lens) {
    flops += 2.0 * ParameterCount() + 4.0 * n * config_.head_dim * config_.num_q_heads *
                                          config_.num_layers;
    kv_bytes += static_cast<double>(n) * config_.KvBytesPerToken();
  }
  const double bytes = ParameterCount() * config_.ElementBytes() + kv_bytes;
  const double compute = flops / (gpu_.bf16_tflops * 1e12 * gpu_.flop_efficiency);
  const double memory = bytes / (gpu_.hbm_gbps * 1e9 * gpu_.bw_efficiency);
  return std::max(compute, memory) + gpu_.step_overhead_us * 1e-6;
}

}  // namespace pdserve
