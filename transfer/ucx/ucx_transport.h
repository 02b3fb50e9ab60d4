#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::ucx {

// `ucx`: UCP RMA. One UCP worker per transport (UCS_THREAD_MODE_SERIALIZED behind one mutex)
// and a dedicated progress thread that drives it, so no caller ever has to drive progress:
// endpoints, large batches and every completion run there. While batches are in flight the
// thread polls the worker; when idle it sleeps on the worker's event fd (or polls every
// millisecond when the transports cannot wake it).
//
// Host-memory batches up to PDSERVE_UCX_INLINE_BYTES (default: all of them; 0 = none) are
// issued by the submitting thread itself when the worker is free and nothing is queued before
// them, as a UCX application would call ucp_put_nbx: over shared memory the puts are the
// copies and the whole batch usually completes inside Submit, with no hand-off to the progress
// thread and no wake-up of the waiter; what is left in flight (tcp) the progress thread
// finishes. When the progress thread is busy (a long batch) the batch is queued to it instead,
// so Submit never waits behind another batch. Issue order is submit order either way.
//
// A batch: one ucp_put_nbx per coalesced run into the peer's pool (rkey from the descriptor),
// then ucp_ep_flush_nbx, then an eager active message carrying the notification; the receiver's
// handler queues it. The handle completes when the active message left, so a notification is
// only ever sent after the puts are remotely complete.
//
// Transport selection is UCX's: UCX_TLS (tcp, posix, sysv, cma, rc, ...), read when the
// process's context for that UCX_TLS value is created; counters().transports reports the lanes
// UCX chose for the peers (from ucp_ep_print_info). Endpoints use peer error handling
// (UCP_ERR_HANDLING_MODE_PEER): a peer that dies fails its batches with Unavailable (tcp: on
// reset or by keepalive, 1 s here unless UCX_KEEPALIVE_INTERVAL is set). UCX 1.13 refuses peer
// error handling over posix / sysv; for those (same host only) the endpoint is created without
// it and the progress thread watches the peer's pid + start time (every 100 ms and before each
// batch) instead. Without peer error handling a dead peer can make UCX abort on its internal
// replies, which is why it is never the first choice (UCX_TLS=cma,posix: posix for active
// messages, cma for puts, pid watch; UCX_TLS=cma,tcp: UCX 1.13 keeps cma out of peer-error
// endpoints and emulates puts with active messages over tcp, and a sender killed mid-batch can
// then abort the receiver inside UCX: prefer cma,posix).
//
// Pools in device memory (KvMemory kind kCuda, e.g. AllocatePoolMemory with pool_memory kCuda)
// are mapped as UCS_MEMORY_TYPE_CUDA and put from as CUDA memory; that needs a UCX with CUDA
// transports (the libucx-cu13 wheel, PDSERVE_UCX_ROOT), otherwise RegisterPool fails with
// FailedPrecondition naming ucx-staged. The progress thread makes the pool's device current.
//
// Use AllocatePoolMemory for pools: over posix / sysv, puts into memory UCX did not allocate
// are emulated with active messages (slower, and exposed to the abort above).
absl::StatusOr<std::unique_ptr<KvTransport>> MakeUcxTransport(const TransportOptions& options);

// Memory allocated by UCX (ucp_mem_map ALLOCATE) so that shared-memory transports can put into
// it directly; registered once, at allocation, and reused by RegisterPool.
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateUcxPoolMemory(size_t bytes);

// Device memory (cudaMalloc on device 0) for a pool the ucx backend registers as
// UCS_MEMORY_TYPE_CUDA, so that puts go device to device (cuda_ipc on one host).
// FailedPrecondition naming ucx-staged and PDSERVE_UCX_ROOT when the linked UCX cannot register
// device memory, or in a build without CUDA.
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateUcxDevicePoolMemory(size_t bytes);

// The linked UCX as this process sees it: version, memory types, CUDA memory yes / no.
std::string UcxRuntimeSummary();

}  // namespace pdserve::transfer::ucx
