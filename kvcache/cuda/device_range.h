#pragma once

// How far a device allocation reaches: a peer's pool opened through CUDA IPC (cuda-ipc, or UCX's
// cuda_ipc through ucp_rkey_ptr) is checked against it before its descriptor's block count is
// believed. A descriptor is another process's word; a block count larger than what that
// process allocated would send our copy kernel past the mapping (a fault in the sender's
// context, which takes down every request on its GPU).

#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace pdserve::cuda {

// Bytes from `p` to the end of the device allocation that holds it (cuMemGetAddressRange).
// The driver's entry point is looked up at run time, so nothing links libcuda.
absl::StatusOr<uint64_t> DeviceAllocationBytesFrom(const void* p);

// OK when `bytes` from `p` lie inside one device allocation; InvalidArgument naming `whose`
// (e.g. "KV pool of agent 'decode-0'") and both sizes when the claim is larger.
absl::Status CheckDeviceReach(const void* p, uint64_t bytes, absl::string_view whose);

}  // namespace pdserve::cuda
