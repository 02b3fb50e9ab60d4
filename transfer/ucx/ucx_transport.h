#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::ucx {

// `ucx`: UCP RMA behind the transfer front (transport_front.h). One UCP worker per transport
// driven by a progress thread (small host batches may be issued inline by the submitter); a
// batch is one put per coalesced run (or streaming stores into a peer pool mapped by
// ucp_rkey_ptr, or data active messages where UCX has no put lane, i.e. tcp), a flush, then the
// notification as an active message, which gives kv_transport.h's Ordering. Same-host peers
// connect over shared memory with our pid watch for failures (UCX refuses peer error handling
// there); others with UCX's peer error handling. Device pools need a CUDA-aware UCX
// (PDSERVE_UCX_ROOT). The design, the failure handling and the measurements that chose each
// default (inline 4 MiB, streaming above 3/4 of the LLC, adaptive progress off): docs/ucx-backend.md.
absl::StatusOr<std::unique_ptr<KvTransport>> MakeUcxTransport(const TransportOptions& options);

// Memory allocated by UCX (ucp_mem_map ALLOCATE) so that shared-memory transports can put into
// it directly; registered once, at allocation, and reused by RegisterPool.
// `listen_host` picks the UCX context (ucx_config.h): pass TransportOptions::listen_host, so
// that the pool and the transport that registers it share one.
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateUcxPoolMemory(size_t bytes,
                                                                const std::string& listen_host);

// Device memory (cudaMalloc on device 0) for a pool the ucx backend registers as
// UCS_MEMORY_TYPE_CUDA, so that puts go device to device (cuda_ipc on one host).
// FailedPrecondition naming ucx-staged and PDSERVE_UCX_ROOT when the linked UCX cannot register
// device memory, or in a build without CUDA.
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateUcxDevicePoolMemory(
    size_t bytes, const std::string& listen_host);

// The linked UCX as this process sees it: version, memory types, CUDA memory yes / no.
std::string UcxRuntimeSummary();

}  // namespace pdserve::transfer::ucx
