#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace pdserve::bench {

struct GpuTransferBenchOptions {
  // ucx: pools in device memory. Empty: cuda-ipc and ucx, and nccl (where built) across GPUs.
  std::vector<std::string> backends;
  // The receiver on the second GPU (its CUDA_VISIBLE_DEVICES the first two swapped), and
  // cudaMemcpyPeer from the first to the second as the baseline in place of a D2D copy.
  bool across_gpus = false;
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
// blocks, as a ratio of a cudaMemcpy D2D of the same bytes measured in the same run. With
// across_gpus the receiver sits on the second GPU, nccl joins the backends, and the ratio is to
// cudaMemcpyPeer from the first GPU to the second. A backend
// that cannot run here (ucx without CUDA transports) is reported with its reason and makes the
// run fail after the others were measured.
absl::Status RunGpuTransferBench(const GpuTransferBenchOptions& options);

}  // namespace pdserve::bench
