#pragma once

// Which GPU each worker of a cluster runs on (`pdserve cluster --prefill-gpus 0 --decode-gpus 1`).
// A worker uses CUDA device 0 for its pool and kernels, so placement is its
// CUDA_VISIBLE_DEVICES: its own GPU first, then the cluster's other GPUs, so that a peer's pool
// on another GPU stays reachable (cudaIpcOpenMemHandle needs the owner's device visible; NCCL
// finds peers by bus id, whatever their ordinal). GPUs no worker was placed on stay hidden.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace pdserve::cluster {

struct GpuPlacement {
  // Worker i of a role runs on gpus[i % size()]; empty: no placement (device 0 as the launcher
  // sees it, CUDA_VISIBLE_DEVICES inherited).
  std::vector<int> prefill;
  std::vector<int> decode;
  std::vector<int> colocated;
  bool empty() const { return prefill.empty() && decode.empty() && colocated.empty(); }
};

// CUDA_VISIBLE_DEVICES for a worker on `gpu`: `gpu` first, then the other ids of `cluster_gpus`
// in ascending order. Ids are CUDA ordinals, or, when the launcher runs with
// CUDA_VISIBLE_DEVICES (`parent_visible`, e.g. Slurm's "2,3"), positions in that list, whose
// entries (ordinals or GPU UUIDs) are passed on. InvalidArgument for a negative id or one past
// the launcher's list.
absl::StatusOr<std::string> VisibleDevicesFor(int gpu, const std::vector<int>& cluster_gpus,
                                              const std::string& parent_visible);

// The environment a worker of `role` ("prefill", "decode", "colocated") number `index` gets from
// the placement: CUDA_VISIBLE_DEVICES where its role was placed, nothing otherwise.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> WorkerGpuEnv(
    const GpuPlacement& placement, const std::string& role, int index,
    const std::string& parent_visible);

// InvalidArgument when a worker's GPU id is negative or past the launcher's
// CUDA_VISIBLE_DEVICES (read here).
absl::Status CheckPlacement(const GpuPlacement& placement);

// A child's environment: `cluster` (ClusterOptions::env), NCCL_NVLS_ENABLE=0 unless `cluster`
// or the launcher's environment sets it (NVLink multicast off), then the child's `own`.
std::vector<std::pair<std::string, std::string>> ChildEnv(
    const std::vector<std::pair<std::string, std::string>>& cluster,
    const std::vector<std::pair<std::string, std::string>>& own);

// Parses "0,1,3" (a --prefill-gpus value); InvalidArgument for anything but non-negative ints.
absl::StatusOr<std::vector<int>> ParseGpuList(const std::string& list);

}  // namespace pdserve::cluster
