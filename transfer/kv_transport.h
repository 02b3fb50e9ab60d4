#pragma once

// The backend-neutral KV data plane, in the spirit of NIXL's lifecycle:
//   1. Allocate the pool with AllocatePoolMemory (the backend decides where it must live: POSIX
//      shared memory for `local`, plain host memory for `ucx`), build the KvCache on it and
//      RegisterPool once per pool (never per transfer; counters().registrations shows it);
//   2. ExportDescriptor -> bytes a peer needs to write into this pool (sent over gRPC by the
//      workers, opaque to them);
//   3. LoadPeer(descriptor) on the sending side (connects once; reuse the PeerId);
//   4. Submit a batch of (local block -> remote block) copies with an optional notification;
//   5. Poll / Wait on the handle (every wait has a deadline);
//   6. the receiver gets the notification exactly once, after all the batch's bytes landed,
//      and those of every batch submitted to the same peer before it (see Ordering);
//   7. RemovePeer / destruction releases endpoints and registrations (RAII).
// No gRPC, CUDA or UCX types appear here; backends live in transfer/<name>/ and are created by
// name through MakeKvTransport (the table in kv_transport.cc: one line per backend, with its
// capabilities). Each backend (local, ucx, cuda-ipc, inproc) is a narrow engine
// (transfer_engine.h: register, connect, post, progress its own way, notify) behind one
// concrete front (transport_front.h) that does the descriptor, peer table, batch planning,
// handles, waits, inbox and counters; `auto` composes two of them per peer.
//
// How a worker pair uses it (request id as the notification):
//   decode:  memory = AllocatePoolMemory(opts, geometry.region_bytes());
//            cache = KvCache::Create(config, n, layout, memory); t->RegisterPool(*cache);
//            descriptor = t->ExportDescriptor();   // -> prefill worker (bytes field in gRPC)
//            ... t->WaitForNotification(request_id, deadline)  // then decode from those blocks
//   prefill: t->RegisterPool(*cache); peer = t->LoadPeer(descriptor);
//            id = t->Submit(peer, copies, request_id); t->Wait(id, deadline); t->Stats(id)
//
// A batch that did not complete (sender died, peer removed, error) never produces a
// notification: the receiver must treat the destination blocks as garbage until the
// notification for its request arrives, and give them back when WaitForNotification returns
// DeadlineExceeded. Partial data may have landed; it is never announced.
//
// Ordering (what lets a worker stream KV as it is produced and announce it once): a batch's
// notification is delivered only after every byte of that batch AND of every batch submitted
// earlier to the same peer by this transport has landed, whatever their sizes. "Earlier": its
// Submit returned before this Submit was called (one thread submitting in turn, or callers
// that order their Submits themselves). If one of those earlier batches fails or is cancelled
// while this one is in flight, this one fails too (its status names the earlier batch) and
// its notification is never delivered. A batch that had already ended in error before this
// one was submitted is the caller's to see (Poll / Wait); in every backend the failures that
// lose bytes (RemovePeer, a dead peer, a broken endpoint) are permanent for that PeerId, so
// later batches to it fail on their own. A window's Announce (OpenWindow) is a batch of 0
// bytes like any: its notification too waits for the batches submitted to that peer before it.
// Nothing is promised across peers, nor about the order in which the sender's handles
// complete. Per backend:
//   local     copy threads may finish batches out of order: a per-peer PeerOrder
//             (peer_order.h) holds each outcome until the batches before it ended; a small
//             batch with nothing in flight to its peer still completes inside Submit;
//   ucx       one worker issues a peer's batches in submit order on one endpoint, and a
//             batch's notification goes after ucp_ep_flush_nbx on that endpoint, which
//             completes only once every operation issued on it before (earlier batches' puts
//             and data messages included) completed remotely; a failed endpoint fails every
//             later flush, and RemovePeer cancels them;
//   cuda-ipc  one stream (copies land in submit order) and one thread that ends batches in
//             submit order, through a PeerOrder for the failure rule;
//   inproc    nothing moves and no batch fails after Submit: trivially ordered.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/transport_capabilities.h"
#include "kvcache/kv_cache.h"
#include "transfer/kv_window.h"

namespace pdserve::transfer {

class NotificationInbox;  // notification_inbox.h

struct BlockCopy {
  BlockId src = 0;  // block id in the local (sending) pool
  BlockId dst = 0;  // block id in the peer's (receiving) pool
};

using PeerId = uint64_t;
using TransferId = uint64_t;

struct TransportOptions {
  // "local" | "ucx" | "inproc" (a colocated worker's own pool) | "cuda-ipc" | "nccl"
  // (KvTransportBackends() lists them; the GPU ones where this build has them)
  std::string backend = "local";
  std::string agent_name;         // this worker's id; tags notifications and log lines
  int copy_threads = 0;           // local backend: memcpy threads for large batches (0 = auto)
  // Batches submitted but not yet complete; one more makes Submit return ResourceExhausted.
  int max_inflight_batches = 64;
  // Where AllocatePoolMemory puts the pool: kCuda asks for device memory (cuda-ipc pools are
  // always there; ucx needs a UCX with CUDA transports, see KvTransportRuntime; local has none).
  MemoryKind pool_memory = MemoryKind::kHost;
  // What a sender presents to this transport's notification endpoint, and what it presents to
  // its peers' (the cluster secret, common/cluster_secret.h). Empty: none is asked for or sent
  // (--insecure-no-auth). Notification endpoints also refuse processes of another user.
  std::string peer_credential;
  // The address this worker advertises: network transports listen only on the interface that
  // carries it (ucx: UCX_NET_DEVICES, unless the operator set it), not on every interface.
  std::string listen_host = "127.0.0.1";
  // This worker's host identity (--host-id): `auto` carries it in its descriptor and uses
  // `local` for a peer that names the same host, `ucx` for one that names another.
  std::string host_id;
  // Two-sided backends (nccl): how long a batch, or a communicator's set-up, may take before
  // the side that waits gives up on the peer (aborts, Unavailable). The workers pass their
  // --transfer-timeout-s.
  absl::Duration batch_timeout = absl::Seconds(30);
  // Where the backend delivers notifications; null: an inbox of its own. `auto` gives its two
  // engines one inbox, so that a wait sees a notification whichever engine brought it.
  std::shared_ptr<NotificationInbox> inbox;
};

struct TransferStats {
  uint64_t bytes = 0;
  uint32_t operations = 0;  // copies / puts actually issued after coalescing
  int64_t submit_ns = 0;    // MonotonicNanos() at Submit
  int64_t complete_ns = 0;  // MonotonicNanos() when the batch completed (0 while in flight)
  // Time the backend's copy threads had this batch's bytes to copy but were not running: the
  // host gave their core to another thread (or the hypervisor took it). A transfer that waited
  // long measured the host, not the transport. local: the copy threads' wall time minus their
  // CPU time over their shares (batches small enough to be copied inside Submit: 0); ucx: the
  // run-queue delay of the sender's progress thread from Submit to completion (run_delay.h),
  // plus, for a same-host peer sent tcp data, its progress thread's (it takes the data off the
  // socket and copies it in; the receivers on other hosts are not seen); 0 where the
  // backend does not measure it (cuda-ipc, inproc) or the kernel does not report it.
  int64_t copy_wait_ns = 0;
};

// What the receiving side learns: `message` from `sender`, delivered once the batch landed.
struct Notification {
  std::string sender;
  std::string message;
};

struct TransportCounters {
  uint64_t registrations = 0;  // memory registrations ever made (must stay 1 per pool)
  uint64_t peers_loaded = 0;   // LoadPeer calls that connected
  uint64_t batches_submitted = 0;
  uint64_t batches_completed = 0;
  uint64_t batches_failed = 0;
  uint64_t bytes_sent = 0;          // bytes of completed batches
  uint64_t operations_issued = 0;   // after coalescing
  uint64_t notifications_received = 0;
  uint64_t senders_lost = 0;  // receiving side: sender connections that went away (local)
  // Receiving side: senders refused (another user, no or a wrong cluster credential, a
  // malformed hello, too much buffered) and notifications dropped (ucx: no or a wrong
  // credential; every backend: the inbox full).
  uint64_t senders_refused = 0;
  std::string transports;     // "memcpy" for local; UCX's selected transports for ucx
  // Peers on this host that the backend reaches over a network transport (ucx: UCX chose tcp
  // where shared memory would do, e.g. UCX_TLS=tcp): each was a WARN line at LoadPeer, and
  // `transports` marks them "(same host over tcp ...)". Sending side; 0 for local.
  uint64_t same_host_network_peers = 0;
};

// Longest notification message accepted by Submit.
inline constexpr size_t kMaxNotificationBytes = 4096;

class KvTransport {
 public:
  virtual ~KvTransport() = default;

  virtual std::string backend() const = 0;
  // What the backend offers (common/transport_capabilities.h): the backend table's entry for
  // backend() unless a backend knows better at run time.
  virtual TransportCapabilities capabilities() const;

  // Registers the pool once; the cache (and its memory) must outlive the transport.
  // FailedPrecondition if a pool is already registered. (`local` receives only into a pool in
  // POSIX shared memory: a private pool can send, and a sender refuses its descriptor.)
  virtual absl::Status RegisterPool(const KvCache& cache) = 0;
  // Serialised descriptor of the registered pool (geometry, addresses, keys, names).
  // FailedPrecondition before RegisterPool.
  virtual absl::StatusOr<std::string> ExportDescriptor() const = 0;

  // Connects to a peer pool (once; reuse the id for every batch). Needs a registered pool.
  // InvalidArgument for a malformed descriptor, another backend's descriptor, or a geometry
  // that does not match the local pool's (layout, layers, fragment bytes); FailedPrecondition
  // for a stale descriptor (the pool or its owner is gone) or a pool that cannot receive.
  virtual absl::StatusOr<PeerId> LoadPeer(const std::string& descriptor) = 0;
  // Forgets the peer; its batches still in flight complete with Cancelled or finish first.
  // FailedPrecondition for an unknown peer.
  virtual absl::Status RemovePeer(PeerId peer) = 0;

  // Starts copying every block of `copies` to `peer` and returns at once. InvalidArgument (and
  // no byte written) for a block outside either pool, a destination named twice or an empty
  // batch; FailedPrecondition for an unknown / removed peer; Unavailable for a peer known dead;
  // ResourceExhausted when max_inflight_batches are in flight. The backend coalesces physically
  // contiguous runs into as few operations as possible. An empty `notification` sends none;
  // one that is sent covers this batch and every batch submitted to `peer` before it
  // (Ordering, above), so a request streamed in several batches carries it on the last only.
  virtual absl::StatusOr<TransferId> Submit(PeerId peer, std::span<const BlockCopy> copies,
                                            const std::string& notification) = 0;
  // true when the batch completed, false while in flight, an error status when it failed
  // (Unavailable: the peer went away; Cancelled: RemovePeer; Internal: the backend failed).
  // NotFound for an id never issued or already reaped.
  virtual absl::StatusOr<bool> Poll(TransferId id) = 0;
  // Waits until the batch completes or `timeout` passes (DeadlineExceeded, the batch stays in
  // flight). Once Poll/Wait returned a final status the handle is reaped; its Stats stay
  // readable for the last few thousand batches.
  virtual absl::Status Wait(TransferId id, absl::Duration timeout) = 0;
  virtual absl::StatusOr<TransferStats> Stats(TransferId id) const = 0;

  // Receiving side: notifications that arrived since the last call, in arrival order.
  virtual std::vector<Notification> TakeNotifications() = 0;
  // Waits up to `timeout` for the notification `message` (from any sender) and consumes it;
  // DeadlineExceeded when it did not come (the batch did not complete).
  virtual absl::Status WaitForNotification(const std::string& message, absl::Duration timeout) = 0;
  // The same notification without a waiting thread: `arrived` runs once, consuming it, on the
  // receive path's thread the moment it is delivered (after its batch's bytes, as for a
  // waiter), or on the calling thread before this returns when it is pending already. It must
  // not block. Why: the decode worker starts a request from there, one thread hand-off sooner
  // than a waiting Decode call could (issue 15). AlreadyExists when `message` is watched
  // already; Unimplemented where the transport has no inbox of its own.
  virtual absl::Status WatchNotification(const std::string& message,
                                         std::function<void()> arrived) {
    (void)message;
    (void)arrived;
    return absl::UnimplementedError("this transport has no notification watches");
  }
  // Withdraws a watch: true when it had not run (it never will), false when it ran or is
  // running (on the receive path: its effects follow shortly) or there was none.
  virtual bool UnwatchNotification(const std::string& message) {
    (void)message;
    return false;
  }

  virtual TransportCounters counters() const = 0;

  // Zero-copy (kv_window.h): a window onto exactly `blocks` of the peer's pool, for the caller's
  // kernels to write in place, and whose Announce sends the notification as a batch of 0 bytes.
  // Backends that map the peer's pool offer it (local); the others answer Unimplemented.
  // InvalidArgument for no blocks, a block outside the peer's pool or one named twice;
  // FailedPrecondition for an unknown peer. The transport must outlive its windows.
  virtual absl::StatusOr<std::unique_ptr<KvWriteWindow>> OpenWindow(
      PeerId /*peer*/, std::span<const BlockId> /*blocks*/) {
    return absl::UnimplementedError(
        absl::StrCat("the ", backend(), " KV backend cannot write a peer's pool in place"));
  }
  bool can_open_windows() const { return capabilities().in_place_windows; }
  // The backend that carries `peer`'s batches, for timelines and reports: backend() except
  // where a transport chooses per peer (`auto`: "auto/local" or "auto/ucx").
  virtual std::string PeerBackend(PeerId /*peer*/) const { return backend(); }
  // The transports that carry `peer`'s batches as the backend knows them ("memcpy", UCX's lanes
  // "tcp/eth0 (data as active messages)"), for each request's timeline; "" when unknown.
  virtual std::string PeerTransports(PeerId /*peer*/) const { return ""; }
};

// Sets process-wide defaults that transport libraries read from the environment, each only
// where the operator left it unset (today: UCX_TCP_RX_SEG_SIZE, NCCL_SOCKET_IFNAME; see kv_transport.cc). Call it
// first thing in main(): setenv is not safe once other threads may read the environment.
void PresetTransportEnvironment();

absl::StatusOr<std::unique_ptr<KvTransport>> MakeKvTransport(const TransportOptions& options);
std::vector<std::string> KvTransportBackends();
// The backend table's capabilities of `backend` (InvalidArgument for an unknown one).
absl::StatusOr<TransportCapabilities> KvTransportCapabilities(const std::string& backend);

// What the backend's runtime offers on this host, for logs and reports (ucx: the linked UCX's
// version, its memory types and whether it can register device memory); empty when the
// backend has nothing to say, InvalidArgument for an unknown backend.
absl::StatusOr<std::string> KvTransportRuntime(const std::string& backend);

// Memory for a KV pool that `options.backend` can register and export: POSIX shared memory for
// `local` (the peer maps it), page-aligned private host memory for `ucx`, device memory for
// `cuda-ipc` and for `ucx` with pool_memory kCuda (FailedPrecondition when the linked UCX cannot
// register device memory or the backend has none). Use it on both sides.
absl::StatusOr<std::unique_ptr<KvMemory>> AllocatePoolMemory(const TransportOptions& options,
                                                             size_t bytes);

// A worker's pool with its transport: AllocatePoolMemory, KvCache::Create, MakeKvTransport,
// RegisterPool and ExportDescriptor. Members in this order: the transport goes first.
struct RegisteredPool {
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<KvTransport> transport;
  std::string descriptor;
};
absl::StatusOr<RegisteredPool> OpenRegisteredPool(const TransportOptions& options,
                                                  const ModelConfig& config, uint32_t num_blocks,
                                                  KvLayout layout);

// Convenience: AllocatePoolMemory + KvCache::Create.
absl::StatusOr<std::unique_ptr<KvCache>> CreatePoolCache(const TransportOptions& options,
                                                         const ModelConfig& config,
                                                         uint32_t num_blocks, KvLayout layout);

}  // namespace pdserve::transfer
