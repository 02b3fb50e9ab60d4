#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace pdserve::bench {

struct KernelBenchOptions {
  std::string preset = "small";
  std::string layout = "layer-major";
  std::vector<int> prompt_lens = {512, 2048};
  int decode_batch = 8;
  int threads = 0;
  double min_seconds = 0.5;  // per measurement
  std::string json_path;     // empty: no JSON file
};

// CPU prefill attention GFLOP/s and decode attention GB/s, next to a memcpy bandwidth and an
// FMA-loop peak measured in the same run, printed as a table with ratios.
absl::Status RunKernelBench(const KernelBenchOptions& options);

}  // namespace pdserve::bench
