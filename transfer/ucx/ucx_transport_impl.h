#pragma once

// The `ucx` KV transport's class, shared by the files that implement it; nothing outside
// transfer/ucx includes this (callers use ucx_transport.h, which also says how the backend
// works and why). One class, one file per concern:
//   ucx_transport.cc           creation, the worker, pool registration, counters, shutdown
//   ucx_transport_peers.cc     loading peers: connecting, lanes, liveness, closing
//   ucx_transport_batches.cc   the send side: Post, inline issue, puts / streaming copies /
//                              data messages, flush, notification, completion
//   ucx_transport_progress.cc  the progress thread and the commands callers hand it
//   ucx_transport_receive.cc   the receive side: data messages and notifications from peers
//
// Threads: the progress thread owns the worker and everything under "progress-thread state";
// a submitting thread may borrow it for one inline batch, always under worker_mu_.

#include <sys/types.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "transfer/batch_table.h"
#include "transfer/run_delay.h"
#include "transfer/copy_plan.h"
#include "transfer/kv_transport.h"
#include "transfer/notification_inbox.h"
#include "transfer/pool_descriptor.h"
#include "transfer/transfer_engine.h"
#include "transfer/ucx/ucx_context.h"
#include "transfer/ucx/ucx_lanes.h"

namespace pdserve::transfer::ucx {

inline constexpr char kBackend[] = "ucx";
inline constexpr uint16_t kNotifyAmId = 0x4b56;  // "KV"
// A batch's data as active messages (peers without a put lane, see UcxPeer::am_data): header
// is the destination offset in the receiver's pool, the body the bytes.
inline constexpr uint16_t kDataAmId = 0x4b44;  // "KD"

// This boot's id: tells whether a descriptor's pid means anything here.
std::string BootId();

// Start time of `pid` (clock ticks since boot, /proc/PID/stat field 22), 0 when it is gone:
// with the pid it names one process even if the pid is reused.
uint64_t ProcessStartTime(pid_t pid);

struct Batch;

// State of one connected peer; touched only by the progress thread (except `dead`).
struct UcxPeer {
  std::string agent;
  ucp_ep_h ep = nullptr;
  ucp_rkey_h rkey = nullptr;
  uint64_t remote_base = 0;
  size_t remote_bytes = 0;   // the peer pool's size
  bool remote_host = false;  // its descriptor says its pool is in host memory
  // UCX has no put lane to this peer (tcp): it would emulate puts with active messages that the
  // receiver acknowledges one by one, and UCX 1.13 aborts the receiver ("Fatal: unexpected
  // error: Endpoint timeout" under ucp_put_handler) when it handles such a put after the
  // sender died, as the acknowledgement cannot be sent. The batch's runs go as our own eager
  // active messages instead (kDataAmId), which the receiver copies into its pool and never
  // answers.
  bool am_data = false;
  // The peer's pool mapped into this process (ucp_rkey_ptr: shared-memory transports, host
  // pools on both sides), for batches copied with streaming stores; null: puts only. Valid
  // until the rkey is destroyed, which happens on the progress thread, like the copies.
  std::byte* direct = nullptr;
  // The same for device pools on one host (ucp_rkey_ptr over cuda_ipc maps the peer's pool into
  // this process's CUDA context): every batch is one launch of the batched copy kernel that
  // cuda-ipc uses, instead of a put per run at UCX's ~8 us each (ucx_perftest). Null: puts.
  std::byte* device_direct = nullptr;
  // The endpoint's lanes as UCX reported them at connect (ucx_lanes.h), and the line
  // counters().transports shows for this peer.
  std::vector<UcxLane> lanes;
  std::string transports;
  // On this host (pid != 0) yet on a network transport: a WARN at connect, counted.
  bool same_host_network = false;
  // Connected without UCX's peer-failure handling (UCP_ERR_HANDLING_MODE_NONE): only the pid
  // watch notices that the peer died.
  bool watched_only = false;
  // Same host: the owner process, watched because shared-memory transports have no peer
  // failure handler (UCX refuses UCP_ERR_HANDLING_MODE_PEER for posix / sysv).
  pid_t pid = 0;
  uint64_t start_time = 0;
  // pidfd of that process (readable once it exits): checking it before every batch is one
  // poll(), where reading /proc/PID/stat is an open, a read, a close and a parse. -1: not open.
  int pidfd = -1;
  // MonotonicNanos() of the last liveness check that found the process alive (see StartBatch).
  int64_t alive_at_ns = 0;
  // A same-host peer reached with data active messages: its progress thread takes every byte
  // off the socket and copies it into its pool, so its run-queue delay is part of each batch's
  // copy wait (its descriptor's progress_tid); null otherwise (shared-memory puts and cuda_ipc
  // never involve the receiver's threads).
  std::shared_ptr<const ThreadRunDelay> receiver_delay;
  int progress_tid = 0;  // from its descriptor (same host only)
  UcxPeer() = default;
  UcxPeer(const UcxPeer&) = delete;
  UcxPeer& operator=(const UcxPeer&) = delete;
  ~UcxPeer() {
    if (pidfd >= 0) close(pidfd);
  }
  absl::Status error;  // set by the endpoint's error handler or the pid watch
  // Batches between their flush and their completion (see FailInFlight).
  std::set<Batch*> in_flight;
  std::shared_ptr<std::atomic<bool>> dead = std::make_shared<std::atomic<bool>>(false);
};


class UcxEngine;

// One batch between its puts and its completion; owned by the UCX callbacks in between.
struct Batch {
  UcxEngine* owner;
  TransferId id;
  std::shared_ptr<UcxPeer> peer;
  std::string notification;
  // Destination offsets of the batch's data messages (am_data): UCX may read a message's
  // header until the send completes, and the flush covers those sends.
  std::vector<uint64_t> data_headers;
  // Completed by FailInFlight while UCX still holds its requests: their callbacks only free it.
  bool abandoned = false;
  // The progress thread's run-queue delay at Submit (run_delay.h; -1: not reported): what it
  // added until the batch finished is the batch's copy_wait_ns.
  int64_t delay_start = -1;
  // The peer's receiving thread's delay when the batch started (UcxPeer::receiver_delay; -1:
  // not read): before that the receiver had none of its bytes.
  int64_t receiver_delay_start = -1;
  // The source runs registered for this batch alone (register_per_batch_), unmapped when it
  // finishes; null otherwise.
  ucp_mem_h batch_memh = nullptr;
  // Recorded after the batch's device copy (device_direct peers); the batch is flushed when it
  // completes (PollDeviceCopies). A cudaEvent_t.
  void* device_event = nullptr;
};

// The handle the front (transport_front.h) keeps for a connected peer: the progress thread's
// UcxPeer is found by id, and `dead` refuses batches without asking that thread.
struct UcxPeerHandle final : EnginePeer {
  UcxPeerHandle(PeerId i, std::string a, std::shared_ptr<std::atomic<bool>> d)
      : id(i), agent(std::move(a)), dead(std::move(d)) {}
  const PeerId id;
  const std::string agent;
  const std::shared_ptr<std::atomic<bool>> dead;
};

class UcxEngine final : public TransferEngine {
 public:
  static absl::StatusOr<std::unique_ptr<TransferEngine>> Create(const EngineContext& context);
  ~UcxEngine() override;

  absl::Status Register(const KvCache& cache, PoolDescriptor& descriptor) override;
  absl::StatusOr<std::shared_ptr<EnginePeer>> Connect(const PoolDescriptor& peer,
                                                      const KvGeometry& geometry) override;
  void Disconnect(EnginePeer& peer) override;
  absl::StatusOr<TransferId> Post(const std::shared_ptr<EnginePeer>& peer,
                                  const PlannedBatch& batch) override;
  void AddCounters(TransportCounters& counters) const override;
  std::string Transports(const EnginePeer& peer) const override;
  // A batch issued inline is usually complete already; one on the progress thread often
  // completes within microseconds: the waiter looks a few times (yielding, so that on a small
  // host the progress thread gets the core) before blocking.
  absl::Duration wait_spin() const override { return absl::Microseconds(50); }

 private:
  UcxEngine(const EngineContext& context, std::shared_ptr<UcxContext> ucx);

  // ---- ucx_transport.cc ----
  absl::Status Init();  // the worker, its handlers and address, the progress thread
  absl::Status UseDevice(int device);

  // ---- ucx_transport_peers.cc (progress thread, except RecordTransports) ----
  absl::Status ConnectOnWorker(PeerId id, const std::shared_ptr<UcxPeer>& peer, const std::string& address,
                       const std::string& rkey);
  ucs_status_t CreateEndpoint(UcxPeer& peer, const std::string& address,
                              ucp_err_handling_mode_t mode);
  void DiscardEndpoint(UcxPeer& peer);
  static std::string EpInfo(ucp_ep_h ep);
  void RecordTransports(const UcxPeer& peer);
  void ClosePeerState(UcxPeer& peer);
  void FailInFlight(UcxPeer& peer);
  void CheckAlive(UcxPeer& peer);
  static bool ProcessGone(const UcxPeer& peer);
  void ClosePeer(PeerId id);
  static void OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status);

  // ---- ucx_transport_batches.cc (under worker_mu_) ----
  bool IssueInline(PeerId peer, TransferId id, const std::byte* base,
                   std::span<const CopyOp> ops, const std::string& notification,
                   int64_t delay_start);
  void StartBatch(PeerId peer_id, TransferId id, const std::byte* base,
                  std::span<const CopyOp> ops, const std::string& notification,
                  int64_t delay_start);
  absl::Status SendData(Batch& batch, const std::byte* base, std::span<const CopyOp> ops);
  void Flushed(Batch* batch, ucs_status_t status);
  // Device-pool batches to device_direct peers (ucx_device_copy.cc): enqueue the copy and its
  // event on the engine's stream; flush those whose event completed, in order (true if any);
  // wait for every copy (before a peer's mapping goes, and at shutdown).
  absl::Status EnqueueDeviceCopy(Batch& batch, std::byte* dst, const std::byte* base,
                                 std::span<const CopyOp> ops);
  bool PollDeviceCopies();
  void FinishDeviceCopiesHere();  // inline, while the progress thread sleeps (batches.cc)
  void WaitDeviceCopies();
  void ReleaseDeviceStream();
  // OK when `bytes` from `mapped` (a peer's device pool as UCX mapped it) lie in one device
  // allocation (kvcache/cuda/device_range.h).
  absl::Status CheckDeviceMapping(const void* mapped, size_t bytes, const std::string& whose) const;
  // Frees a batch UCX no longer references, with its per-batch registration.
  void Discard(Batch* batch);
  void Finish(Batch* batch, absl::Status status);
  static absl::Status PeerStatus(const UcxPeer& peer, const std::string& what, ucs_status_t s);
  static void OnFlushed(void* request, ucs_status_t status, void* user_data);
  static void OnNotificationSent(void* request, ucs_status_t status, void* user_data);

  // ---- ucx_transport_progress.cc ----
  // The progress thread's run-queue delay so far (ns), -1 before it started or where the kernel
  // does not report it.
  int64_t ProgressDelayNs() const;
  void Wake();
  void PostCommand(std::function<void()> command);
  absl::StatusOr<absl::Status> RunOnWorker(std::function<absl::Status()> fn);
  void Loop();
  void Sleep();
  ucs_status_t WaitRequest(ucs_status_ptr_t request, int64_t timeout_ns);
  void Shutdown();

  // ---- ucx_transport_receive.cc (UCX active-message handlers, progress thread) ----
  static ucs_status_t OnData(void* arg, const void* header, size_t header_length, void* data,
                             size_t length, const ucp_am_recv_param_t* param);
  static ucs_status_t OnNotification(void* arg, const void* header, size_t header_length,
                                     void* data, size_t length, const ucp_am_recv_param_t* param);

  const TransportOptions& options_;  // the front's, which outlives this engine
  std::shared_ptr<spdlog::logger> log_;
  NotificationInbox& inbox_;  // the front's (shared with `auto`'s other engine)
  BatchTable& table_;         // the front's
  std::shared_ptr<UcxContext> context_;
  ucp_worker_h worker_ = nullptr;
  std::string worker_address_;
  // What each notification carries ahead of its message (sender_credential.h).
  const std::string sender_header_;
  std::atomic<uint64_t> notifications_refused_{0};
  ucp_mem_h own_memh_ = nullptr;  // set when RegisterPool mapped memory UCX did not allocate
  // Of the registered pool; written before the first batch is posted, read by the progress
  // thread (the command queue's mutex orders the two).
  ucs_memory_type_t pool_memory_type_ = UCS_MEMORY_TYPE_HOST;
  // The registered pool when it is in host memory, for OnData; null until then.
  std::atomic<std::byte*> pool_data_{nullptr};
  std::atomic<size_t> pool_bytes_{0};
  // Batches above this many bytes to a mapped peer are copied with streaming stores: 3/4 of the
  // last-level cache (where glibc's memcpy, and so ucx_perftest's one message, starts
  // streaming), at most kMaxCachedBatchBytes; PDSERVE_UCX_STREAM_BYTES overrides it.
  const uint64_t stream_bytes_;
  int command_fd_ = -1;
  int epoll_fd_ = -1;
  bool can_sleep_ = false;
  std::atomic<PeerId> next_peer_{1};

  mutable std::mutex mu_;  // std::mutex: see worker_mu_
  const KvCache* pool_ = nullptr;
  std::set<std::string> lanes_;  // every peer's UcxPeer::transports, once
  // Each connected peer's UcxPeer::transports, under mu_ (peers_ is the progress thread's).
  absl::flat_hash_map<PeerId, std::string> peer_transports_;
  uint64_t same_host_network_peers_ = 0;

  std::mutex command_mu_;  // std::mutex: see worker_mu_
  std::deque<std::function<void()>> commands_;

  // True while the progress thread is (about to be) asleep: Post and inline batches left in
  // flight must wake it.
  std::atomic<bool> sleeping_{false};

  // Every UCP call on worker_ and the progress-thread state below: held by the progress
  // thread for one turn at a time and by a submitting thread for an inline batch. Taken before
  // command_mu_ when both are. A std::mutex: Debian's Abseil keeps held-lock bookkeeping on
  // every absl::Mutex operation, and this one is taken for every batch.
  std::mutex worker_mu_;
  // Host-memory batches up to this many bytes may be issued on the submitting thread
  // (IssueInline); PDSERVE_UCX_INLINE_BYTES overrides kDefaultInlineBytes.
  const uint64_t inline_bytes_;
  // PDSERVE_UCX_REGISTER_PER_BATCH=1: a study knob that reproduces a connector registering
  // memory per transfer (checklist item "re-registration"): every batch registers its source
  // span with ucp_mem_map before its puts and unmaps it after, and counters().registrations
  // counts each. Off by default: the pool is registered once.
  const bool register_per_batch_;
  std::atomic<uint64_t> batch_registrations_{0};

  // Progress-thread state (also touched by inline batches), under worker_mu_.
  bool stopping_ = false;
  int64_t last_liveness_check_ = 0;
  std::map<PeerId, std::shared_ptr<UcxPeer>> peers_;
  absl::flat_hash_map<TransferId, int> batches_;  // in flight (flush or notification pending)
  std::deque<Batch*> device_pending_;  // device copies in submit order (one stream)
  void* device_stream_ = nullptr;      // a cudaStream_t, made at the first device copy
  int pool_device_ = 0;                // the device pool's GPU (set before any batch)
  // PDSERVE_UCX_DEVICE_PUTS=1: device pools always go as UCX puts (to study UCX's own path).
  const bool device_puts_;
  const bool device_inline_;  // PDSERVE_UCX_DEVICE_INLINE (default 1; see Post)
  // Opened by the progress thread as it starts, then only read (from any thread).
  ThreadRunDelay progress_delay_;
  std::atomic<bool> progress_delay_ready_{false};
  std::atomic<int> progress_tid_{0};  // for the descriptor's progress_tid
  std::thread thread_;
};

}  // namespace pdserve::transfer::ucx
