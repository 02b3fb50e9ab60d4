#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::ucx {

// `ucx`: UCP RMA. One UCP worker per transport (UCS_THREAD_MODE_SERIALIZED), driven by a
// dedicated progress thread: endpoints, large batches, flushes and completions run there;
// callers hand it commands and wait on handles, so no caller ever has to drive progress. A
// host-memory batch of up to 4 MiB (PDSERVE_UCX_INLINE_BYTES) to a peer reached with puts is
// issued by the submitting thread itself when the worker is free and no command is queued
// (worker_mu_ serializes the two; submit order stays issue order): over shared memory the puts
// are the copies and the notification an inline send, so it usually completes inside Submit,
// without a hand-off or a wake-up (on a 2-core host the two threads shared a core: 256 KiB
// batches ran at 0.4x of ucx_perftest, 0.8x inline). What such a batch leaves in flight the
// progress thread finishes. Wait looks at the handle for up to 50 us, yielding, before it
// blocks. While batches are in flight the progress thread polls the worker; when idle it
// sleeps on the worker's event fd (or polls every millisecond when the transports cannot wake
// it). UCX's adaptive progress is off
// unless UCX_ADAPTIVE_PROGRESS is set (ucx_context.cc): with it, a receiver's interfaces that
// none of its own endpoints use are left to UCX's async thread, and over shared memory every
// notification then cost the sender a socket signal to wake it.
//
// A batch: one ucp_put_nbx per coalesced run into the peer's pool (rkey from the descriptor),
// then ucp_ep_flush_nbx, then an eager active message carrying the notification; the receiver's
// handler queues it. The handle completes when the active message left, so a notification is
// only ever sent after the puts are remotely complete. Where UCX has no put lane to the peer
// (tcp: it would emulate each put with an active message the receiver acknowledges, and UCX
// 1.13 aborts a receiver that handles such a put after its sender died, because the
// acknowledgement cannot be sent), the runs go instead as eager data active messages (at most
// 256 KiB each, destination offset in the header) that the receiver's handler copies into its
// host pool and never answers; the notification follows them on the same endpoint, so it is
// handled after they landed. Both pools must be in host memory for that (the descriptor's
// "memory" field); counters().transports marks such peers "(data as active messages)".
// The same flush gives kv_transport.h's Ordering rule with nothing added: batches to a peer
// are issued in submit order on its one endpoint (one worker; an inline batch never overtakes
// a queued one), and a flush completes only once every operation issued on the endpoint
// before it did, so a batch's notification also follows every earlier batch's puts, streamed
// copies (fenced) and data messages; an endpoint that fails fails every flush still pending,
// and RemovePeer's forced close cancels them (notify_order_test.cc checks both).
// Over shared memory (the peer's host pool mapped here by ucp_rkey_ptr), a batch larger than
// 3/4 of the last-level cache or 16 MiB, whichever is smaller (PDSERVE_UCX_STREAM_BYTES), is
// copied by the progress thread with streaming stores straight into that mapping instead of
// put, then fenced, flushed and notified the same way: glibc's memcpy, which a posix put is,
// streams only single copies above 3/4 of the cache, so puts of one block or fragment each ran
// at 2/3 of ucx_perftest's one big message, and a VM's reported cache can be far larger than
// what it gets (32 MiB batches: 5-8 GB/s as puts, 12-13.6 streamed).
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
// endpoints, so the data goes as active messages over tcp as above: prefer cma,posix).
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
