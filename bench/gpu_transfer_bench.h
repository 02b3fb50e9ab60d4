#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace pdserve::bench {

struct GpuTransferBenchOptions {
  std::vector<std::string> backends = {"cuda-ipc", "ucx"};  // ucx: pools in device memory
  std::string preset = "llama3-8b";
  std::vector<std::string> layouts = {"layer-major", "block-major"};
  std::vector<int> request_tokens = {512, 2048, 8192};
  int iterations = 10;
  std::string json_path;
  std::string receiver_layout;   // internal: run as the receiving process for this layout
  std::string receiver_backend;  // internal: ... over this backend
};

// `pdserve bench transfer --device cuda` (alias `pdserve bench gpu-transfer`): GB/s of each
// backend (cuda-ipc, and ucx with both pools in device memory) between two processes on one GPU
// (this one sends, a re-executed copy of it receives), for contiguous and scattered destination
// blocks, as a ratio of a cudaMemcpy D2D of the same bytes measured in the same run. A backend
// that cannot run here (ucx without CUDA transports) is reported with its reason and makes the
// run fail after the others were measured.
absl::Status RunGpuTransferBench(const GpuTransferBenchOptions& options);

}  // namespace pdserve::bench
