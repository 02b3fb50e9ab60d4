#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::cuda_ipc {

// `cuda-ipc`: KV pools in device memory of one host's GPUs. The receiving (decode) pool is
// exported once with cudaIpcGetMemHandle; a sender opens it once at LoadPeer
// (cudaIpcOpenMemHandle) and copies each batch on its own stream: the coalesced runs
// (PlanCopies) go to a gather-copy kernel, up to 1024 runs per launch (cudaMemcpyAsync per run
// if a run is not 16-byte aligned), then it records an event. A completion thread waits for the
// event and only then sends the notification (transfer/notify's unix-socket channel), so a
// notification always follows its bytes. A peer in the same process is written through its pointer (CUDA
// refuses to open a process's own handle).
absl::StatusOr<std::unique_ptr<KvTransport>> MakeCudaIpcTransport(const TransportOptions& options);

// Device memory (cudaMalloc) on device 0, so that the pool can be exported.
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateCudaIpcPoolMemory(size_t bytes);

}  // namespace pdserve::transfer::cuda_ipc
