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
// Transport selection is UCX's, within UCX_TLS (tcp, posix, sysv, cma, rc, ...; read when the
// process's context for that value is created); counters().transports reports per peer the
// transports of the lanes UCX chose (from ucp_ep_print_info: ucx_lanes.h), and each connect
// logs them lane by lane. Failure detection decides what UCX may choose: UCX 1.13 refuses peer
// error handling (UCP_ERR_HANDLING_MODE_PEER) over every shared-memory transport, and asked for
// it picks tcp even between two processes of one host. So a peer on this host (its descriptor's
// boot id, pid and start time) is connected without it whenever UCX_TLS allows shared memory
// (unset, or naming posix / cma): UCX then picks posix for active messages and cma for puts, and
// the progress thread watches the peer's pid (pidfd, every 100 ms and before each batch), which
// fails its batches with Unavailable once it died. Should such an endpoint still have a network
// lane (UCX_TLS=tcp,cma: active messages on tcp), it is closed and made again with peer error
// handling, since without it UCX can abort on that lane's errors after the peer died (the data
// then goes as active messages over tcp, as above: prefer cma,posix). Peers on other hosts, and
// same-host peers when UCX_TLS leaves no shared memory, get peer error handling: a peer that dies
// fails its batches with Unavailable (tcp: on reset or by keepalive, 1 s here unless
// UCX_KEEPALIVE_INTERVAL is set), and a same-host one is watched by pid as well. A same-host peer
// that ends up on a network transport is a WARN line, counters().same_host_network_peers and a
// "(same host over tcp/lo: no shared memory)" mark in counters().transports.
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
