#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace pdserve::bench {

struct GpuKernelBenchOptions {
  std::string preset = "llama3-8b";
  std::string layout = "layer-major";
  std::vector<int> prompt_lens = {512, 2048, 8192};
  int decode_batch = 8;
  int iterations = 10;      // timed runs per measurement (median), after warm-up
  bool dense = false;       // also time the cuBLAS dense layers of the preset
  std::string json_path;    // empty: no JSON file
};

// `pdserve bench kernels --device cuda`: GPU prefill attention TFLOP/s against a cuBLAS bf16
// GEMM, and decode attention GB/s against a device-to-device copy, both measured in the same
// run. Unavailable when the build has no CUDA or the machine no device.
absl::Status RunGpuKernelBench(const GpuKernelBenchOptions& options);

}  // namespace pdserve::bench
