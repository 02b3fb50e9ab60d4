#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace pdserve::bench {

struct GpuTransferBenchOptions {
  std::string preset = "llama3-8b";
  std::vector<std::string> layouts = {"layer-major", "block-major"};
  std::vector<int> request_tokens = {512, 2048, 8192};
  int iterations = 10;
  std::string json_path;
  std::string receiver_layout;  // internal: run as the receiving process for this layout
};

// `pdserve bench gpu-transfer`: cuda-ipc GB/s between two processes on one GPU (this one sends,
// a re-executed copy of it receives), for contiguous and scattered destination blocks, as a
// ratio of a cudaMemcpy D2D of the same bytes in one process.
absl::Status RunGpuTransferBench(const GpuTransferBenchOptions& options);

}  // namespace pdserve::bench
