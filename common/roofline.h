#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"

namespace pdserve {

// A named GPU for the roofline compute mode: a step takes max(FLOPs / peak, bytes / bandwidth)
// plus a fixed launch overhead. Constants come from datasheets, scaled by achievable fractions
// measured on a real H100 (see docs/results); CPU-only runs use them to study 8B shapes.
struct GpuSpec {
  std::string name;
  double bf16_tflops = 0;     // dense peak
  double hbm_gbps = 0;        // HBM bandwidth, GB/s
  double flop_efficiency = 0; // achievable fraction of peak for GEMM-like work
  double bw_efficiency = 0;   // achievable fraction of HBM bandwidth
  double step_overhead_us = 0;
};

absl::StatusOr<GpuSpec> GpuSpecByName(std::string_view name);
std::vector<std::string> GpuSpecNames();

// Costs of the model's work on `gpu`: the dense layers (2 x parameters per token) plus
// attention, and for decode the bytes of weights and of every KV position read.
class RooflineModel {
 public:
  RooflineModel(const ModelConfig& config, const GpuSpec& gpu);

  double ParameterCount() const;
  // A prefill batch of prompts with these lengths.
  double PrefillSeconds(std::span<const int> prompt_lens) const;
  // One decode step for sequences of these lengths (one new token each).
  double DecodeStepSeconds(std::span<const int> seq_lens) const;

 private:
  ModelConfig config_;
  GpuSpec gpu_;
};

}  // namespace pdserve
