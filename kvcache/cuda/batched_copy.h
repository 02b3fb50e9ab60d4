#pragma once

// Many device-to-device copies in few kernel launches: the op list travels as kernel parameters
// (up to kOpsPerLaunch ops per launch), so a layer-major batch of thousands of 64 KiB fragments
// costs a few launches instead of one cudaMemcpyAsync (a few microseconds of host time) each.
// Used by transfer/cuda_ipc; plain C++ (the stream is passed as void*, a cudaStream_t).

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pdserve::cuda {

struct DeviceCopy {
  uint64_t src = 0;  // offset from src_base
  uint64_t dst = 0;  // offset from dst_base
  uint64_t bytes = 0;
};

// Enqueues every copy on `stream`. Offsets and sizes must be multiples of 16 bytes
// (InvalidArgument otherwise: the caller falls back to cudaMemcpyAsync).
absl::Status EnqueueBatchedCopy(std::span<const DeviceCopy> copies, const std::byte* src_base,
                                std::byte* dst_base, void* stream);

// For tests on a GPU: uploads `src` and `dst`, enqueues the copies between them on a new stream,
// and returns the destination image after they ran.
absl::StatusOr<std::vector<std::byte>> CopyThroughDevice(std::span<const DeviceCopy> copies,
                                                         std::span<const std::byte> src,
                                                         std::span<const std::byte> dst);
// The same for several batches enqueued back to back on the stream (none waits for the one
// before), in order.
absl::StatusOr<std::vector<std::byte>> CopyThroughDevice(
    std::span<const std::vector<DeviceCopy>> batches, std::span<const std::byte> src,
    std::span<const std::byte> dst);

}  // namespace pdserve::cuda
