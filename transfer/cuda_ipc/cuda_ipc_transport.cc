#include "transfer/cuda_ipc/cuda_ipc_transport.h"

#include <cuda_runtime.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <chrono>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "kvcache/cuda/batched_copy.h"
#include "kvcache/cuda/cuda_check.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "kvcache/cuda/device_range.h"
#include "transfer/batch_table.h"
#include "transfer/copy_plan.h"
#include "transfer/notify/notify_channel.h"
#include "common/clock.h"
#include "transfer/notification_inbox.h"
#include "transfer/peer_order.h"
#include "transfer/pool_descriptor.h"
#include "transfer/transport_front.h"

namespace pdserve::transfer::cuda_ipc {
namespace {

constexpr char kBackend[] = "cuda-ipc";
// Runs at least this long go to cudaMemcpyAsync rather than the gather kernel. Measured on the
// H200 (2026-12-04): one 256 MiB run 0.94x of a D2D copy by cudaMemcpyAsync against 0.68x by
// the kernel, but 32 runs of 8 MiB 0.55x and 128 runs of 2 MiB 0.21x, each call paying its own
// launch and tail: only runs as large as a whole request's go there. Spreading runs of 4 MiB
// and more over 2 or 4 side streams joined by events did not help either (2026-12-05 run 3:
// 32 runs of 8 MiB at 0.61-0.87x against the kernel's 0.88-0.89x).
constexpr uint64_t kCopyEngineRunBytes = uint64_t{64} << 20;

// A peer pool opened through its IPC handle (closed on destruction), or borrowed when the peer
// lives in this process.
struct IpcPeer final : EnginePeer {
  explicit IpcPeer(PoolDescriptor d) : descriptor(std::move(d)) {}
  PoolDescriptor descriptor;
  std::byte* base = nullptr;
  bool opened = false;
  // The peer pool's device as this process numbers it (0: this GPU), and whether this GPU's
  // kernels can write it (peer access over NVLink or PCIe P2P). Without peer access the copy
  // kernel would fault on the peer's memory: every run goes to cudaMemcpyAsync, which stages
  // through the host.
  int device = 0;
  bool kernel_reaches = true;
  std::unique_ptr<notify::NotifySender> notifier;
  std::shared_ptr<std::atomic<bool>> removed = std::make_shared<std::atomic<bool>>(false);
  // Zero-copy: a view of the opened pool for windows (the GPU kernels write it in place).
  std::unique_ptr<KvCache> view;
  // Bytes land in submit order already (one stream, one completion thread); this adds the
  // rule that a batch behind a failed one fails unannounced (kv_transport.h, Ordering).
  PeerOrder order;

  ~IpcPeer() {
    view.reset();
    if (opened) cudaIpcCloseMemHandle(base);
  }
};

std::string Where(const IpcPeer& peer) {
  if (peer.device == 0) return "same GPU";
  return peer.kernel_reaches ? absl::StrCat("peer GPU ", peer.device, ", peer access")
                             : absl::StrCat("peer GPU ", peer.device,
                                            ", no peer access: cudaMemcpy staged through the host");
}

// Waits for batch events in submission order on one thread and runs their completions.
class CompletionThread {
 public:
  // Polls the event, yielding the core, for as long as a large batch takes, then sleeps in
  // short steps: a blocking-sync event's wake-up added tens of microseconds to every batch, the
  // fixed cost that kept a 512-token request at 0.46x of a D2D copy (issue 18).
  static cudaError_t WaitEvent(cudaEvent_t event) {
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(5);
    for (;;) {
      const cudaError_t e = cudaEventQuery(event);
      if (e != cudaErrorNotReady) return e;
      if (std::chrono::steady_clock::now() < spin_until) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }

  struct Item {
    cudaEvent_t event;
    std::function<void(absl::Status)> done;
  };
  explicit CompletionThread(int device) : thread_([this, device] { Loop(device); }) {}
  ~CompletionThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    for (cudaEvent_t e : free_events_) cudaEventDestroy(e);
  }
  // An event for the next batch: a used one when there is one (creating and destroying one per
  // batch cost ~2.5 us of its time on the H100, 2026-12-06).
  absl::StatusOr<cudaEvent_t> TakeEvent() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_events_.empty()) {
        cudaEvent_t e = free_events_.back();
        free_events_.pop_back();
        return e;
      }
    }
    cudaEvent_t e = nullptr;
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  }
  // An event to reuse: its batch ended, or failed before the event was recorded.
  void GiveBack(cudaEvent_t e) {
    std::lock_guard<std::mutex> lock(mu_);
    free_events_.push_back(e);
  }
  void Push(Item item) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      items_.push_back(std::move(item));
    }
    cv_.notify_one();
  }

 private:
  void Loop(int device) {
    cudaSetDevice(device);
    for (;;) {
      Item item;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !items_.empty(); });
        if (items_.empty()) return;  // stopping, nothing left
        item = std::move(items_.front());
        items_.pop_front();
      }
      const absl::Status s = cuda::CudaStatus(WaitEvent(item.event), "KV copy");
      GiveBack(item.event);
      item.done(s);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;
  std::vector<cudaEvent_t> free_events_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

// cuda-ipc's engine: the peer's device pool opened through its IPC handle, copies on one
// stream (a gather-copy kernel, cudaMemcpyAsync for very large runs), one thread that ends
// batches in submit order, the notification over transfer/notify's channel. The front
// (transport_front.h) does the descriptor, the peer table, planning, handles and the inbox.
class CudaIpcEngine final : public TransferEngine {
 public:
  CudaIpcEngine(const EngineContext& context, cudaStream_t stream)
      : options_(context.options),
        log_(ComponentLogger("transfer")),
        inbox_(context.inbox),
        table_(context.table),
        stream_(stream),
        completions_(std::make_unique<CompletionThread>(0)) {}

  ~CudaIpcEngine() override {
    {
      absl::MutexLock lock(&mu_);
      for (const std::weak_ptr<IpcPeer>& p : peers_) {
        if (std::shared_ptr<IpcPeer> peer = p.lock()) peer->removed->store(true);
      }
    }
    completions_.reset();  // waits for every batch in flight
    cudaStreamDestroy(stream_);
  }

  absl::Status Register(const KvCache& cache, PoolDescriptor& descriptor) override {
    absl::MutexLock lock(&mu_);
    if (cache.memory().kind() != MemoryKind::kCuda) {
      return absl::InvalidArgumentError(
          "cuda-ipc needs a KV pool in device memory (AllocatePoolMemory with backend cuda-ipc)");
    }
    cudaIpcMemHandle_t handle;
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaIpcGetMemHandle(&handle, cache.base()));
    absl::StatusOr<std::unique_ptr<notify::NotifyListener>> listener =
        notify::NotifyListener::Start(&inbox_, options_.agent_name, options_.peer_credential);
    if (!listener.ok()) return listener.status();
    listener_ = std::move(*listener);
    descriptor.fields["ipc_handle"] =
        absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(&handle), sizeof(handle)));
    descriptor.fields["pid"] = absl::StrCat(getpid());
    descriptor.fields["address"] = absl::StrCat(reinterpret_cast<uintptr_t>(cache.base()));
    descriptor.fields["device"] = absl::StrCat(cache.memory().device());
    descriptor.fields["socket"] = listener_->address();
    pool_ = &cache;
    log_->info("agent {}: registered device KV pool of {} blocks x {} bytes ({}) for CUDA IPC",
               options_.agent_name, cache.geometry().num_blocks(), cache.geometry().block_bytes(),
               std::string(KvLayoutName(cache.geometry().layout())));
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<EnginePeer>> Connect(const PoolDescriptor& descriptor,
                                                      const KvGeometry&) override {
    const PoolDescriptor* d = &descriptor;
    absl::StatusOr<std::string> handle_hex = d->Field("ipc_handle");
    absl::StatusOr<std::string> pid = d->Field("pid");
    absl::StatusOr<std::string> address = d->Field("address");
    absl::StatusOr<std::string> socket = d->Field("socket");
    if (!handle_hex.ok() || !pid.ok() || !address.ok() || !socket.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cuda-ipc descriptor of agent '", d->agent, "' lacks its handle fields"));
    }
    auto peer = std::make_shared<IpcPeer>(*d);
    if (*pid == absl::StrCat(getpid())) {
      uintptr_t p = 0;
      if (!absl::SimpleAtoi(*address, &p)) return absl::InvalidArgumentError("bad address field");
      peer->base = reinterpret_cast<std::byte*>(p);
    } else {
      const std::string raw = absl::HexStringToBytes(*handle_hex);
      cudaIpcMemHandle_t handle;
      if (raw.size() != sizeof(handle)) return absl::InvalidArgumentError("bad cuda-ipc handle");
      std::memcpy(&handle, raw.data(), sizeof(handle));
      void* base = nullptr;
      PDSERVE_CUDA_RETURN_IF_ERROR(
          cudaIpcOpenMemHandle(&base, handle, cudaIpcMemLazyEnablePeerAccess));
      peer->base = static_cast<std::byte*>(base);
      peer->opened = true;
      cudaPointerAttributes attributes{};
      PDSERVE_CUDA_RETURN_IF_ERROR(cudaPointerGetAttributes(&attributes, base));
      peer->device = attributes.device;
      if (peer->device != 0) {
        int can = 0;
        PDSERVE_CUDA_RETURN_IF_ERROR(cudaDeviceCanAccessPeer(&can, 0, peer->device));
        peer->kernel_reaches = can != 0;
      }
    }
    // Block ids are checked against the descriptor's count; the count is checked here against
    // what the peer really allocated (a larger claim would send our copies past the mapping).
    RETURN_IF_ERROR(cuda::CheckDeviceReach(
        peer->base, static_cast<uint64_t>(d->region_bytes()),
        absl::StrCat("cuda-ipc: KV pool of agent '", d->agent, "'")));
    absl::StatusOr<std::unique_ptr<notify::NotifySender>> notifier =
        notify::NotifySender::Connect(*socket, options_.agent_name, options_.peer_credential);
    if (!notifier.ok()) return notifier.status();
    peer->notifier = std::move(*notifier);
    {
      absl::MutexLock lock(&mu_);
      std::erase_if(peers_, [](const std::weak_ptr<IpcPeer>& p) { return p.expired(); });
      peers_.push_back(peer);
    }
    log_->info("agent {}: opened device KV pool of peer '{}' ({} blocks) over CUDA IPC, {}",
               options_.agent_name, d->agent, d->num_blocks, Where(*peer));
    return peer;
  }

  void Disconnect(EnginePeer& peer) override {
    // Batches in flight keep their own reference; they end Cancelled.
    static_cast<IpcPeer&>(peer).removed->store(true);
  }

  absl::StatusOr<TransferId> Post(const std::shared_ptr<EnginePeer>& engine_peer,
                                  const PlannedBatch& batch) override {
    std::shared_ptr<IpcPeer> peer = std::static_pointer_cast<IpcPeer>(engine_peer);
    const KvCache* pool;
    {
      absl::MutexLock lock(&mu_);
      pool = pool_;
    }
    const std::string& notification = batch.notification;
    const std::span<const CopyOp> ops = batch.ops;
    if (peer->notifier->PeerGone()) {
      return absl::UnavailableError(absl::StrCat("KV peer '", peer->descriptor.agent,
                                                 "' is gone (request ", notification, ")"));
    }
    absl::StatusOr<TransferId> tid = table_.Begin(batch.bytes, static_cast<uint32_t>(ops.size()));
    if (!tid.ok()) return tid.status();
    peer->order.Enter(*tid);
    cudaEvent_t event = nullptr;
    absl::Status issued = absl::OkStatus();
    if (absl::StatusOr<cudaEvent_t> e = completions_->TakeEvent(); e.ok()) {
      event = *e;
    } else {
      issued = e.status();
    }
    // Very large runs go to cudaMemcpyAsync, one call each (kCopyEngineRunBytes); the others to
    // one gather-copy kernel launch per 1024 runs (a cudaMemcpyAsync per run pays its own launch
    // and tail; so does each copy of one cudaMemcpyBatchAsync: 32 runs of 8 MiB at 0.53-0.57x of
    // a D2D copy, 4096 runs of 64 KiB at 0.007x, measured on the H200). Odd sizes: cudaMemcpyAsync.
    std::vector<cuda::DeviceCopy> runs, large;
    runs.reserve(ops.size());
    for (const CopyOp& op : ops) {
      (op.bytes >= kCopyEngineRunBytes ? large : runs).push_back({op.src, op.dst, op.bytes});
    }
    if (issued.ok() && !runs.empty() &&
        (!peer->kernel_reaches ||
         !cuda::EnqueueBatchedCopy(runs, pool->base(), peer->base, stream_).ok())) {
      for (size_t i = 0; issued.ok() && i < runs.size(); ++i) {
        issued = cuda::CudaStatus(
            cudaMemcpyAsync(peer->base + runs[i].dst, pool->base() + runs[i].src, runs[i].bytes,
                            cudaMemcpyDeviceToDevice, stream_),
            "cudaMemcpyAsync");
      }
    }
    for (size_t k = 0; issued.ok() && k < large.size(); ++k) {
      issued = cuda::CudaStatus(
          cudaMemcpyAsync(peer->base + large[k].dst, pool->base() + large[k].src, large[k].bytes,
                          cudaMemcpyDeviceToDevice, stream_),
          "cudaMemcpyAsync");
    }
    if (issued.ok()) issued = cuda::CudaStatus(cudaEventRecord(event, stream_), "cudaEventRecord");
    if (!issued.ok()) {
      if (event != nullptr) completions_->GiveBack(event);
      peer->order.Landed(table_, *tid, [issued] { return issued; });
      return *tid;
    }
    completions_->Push({event, [this, peer, tid = *tid,
                                notification = notification](absl::Status copied) {
                          peer->order.Landed(table_, tid, [peer, tid, notification, copied] {
                            if (!copied.ok()) return copied;
                            if (peer->removed->load()) {
                              return absl::CancelledError(absl::StrCat(
                                  "KV peer '", peer->descriptor.agent, "' removed during batch ",
                                  tid, " (request ", notification, ")"));
                            }
                            if (!notification.empty()) return peer->notifier->Send(notification);
                            if (peer->notifier->PeerGone()) {
                              return absl::UnavailableError("KV peer went away");
                            }
                            return absl::OkStatus();
                          });
                        }});
    return *tid;
  }


  absl::StatusOr<std::unique_ptr<KvWriteWindow>> OpenWindow(
      const std::shared_ptr<EnginePeer>& engine_peer, std::span<const BlockId> blocks) override {
    std::shared_ptr<IpcPeer> peer = std::static_pointer_cast<IpcPeer>(engine_peer);
    if (!peer->kernel_reaches) {
      return absl::FailedPreconditionError(absl::StrCat(
          "zero-copy: this GPU's kernels cannot write KV peer '", peer->descriptor.agent,
          "' (", Where(*peer), ")"));
    }
    {
      absl::MutexLock lock(&mu_);
      if (peer->view == nullptr) {
        absl::StatusOr<std::unique_ptr<KvCache>> view = KvCache::Create(
            pool_->config(), peer->descriptor.num_blocks, peer->descriptor.layout,
            std::make_unique<BorrowedKvMemory>(
                peer->base, static_cast<size_t>(peer->descriptor.region_bytes()),
                MemoryKind::kCuda, pool_->memory().device()));
        if (!view.ok()) return view.status();
        peer->view = std::move(*view);
      }
    }
    std::shared_ptr<const KvCache> view(peer, peer->view.get());
    return KvWriteWindow::Open(
        std::move(view), blocks,
        [this, peer](const std::string& notification) -> absl::StatusOr<TransferId> {
          if (notification.size() > kMaxNotificationBytes) {
            return absl::InvalidArgumentError("KV transfer notification too long");
          }
          // The kernels that wrote the window ended before the caller announced (their call
          // waits for them): the bytes are in the peer's memory. A batch of 0 bytes like any: it
          // waits for the batches to this peer before it (kv_transport.h, Ordering).
          auto finish = [peer, notification] {
            return peer->removed->load()
                       ? absl::CancelledError(absl::StrCat("KV peer '", peer->descriptor.agent,
                                                           "' removed (request ", notification,
                                                           ")"))
                       : peer->notifier->Send(notification);
          };
          if (peer->order.Idle()) return table_.AddFinished(0, 0, MonotonicNanos(), finish());
          absl::StatusOr<TransferId> tid = table_.Begin(0, 0);
          if (!tid.ok()) return tid.status();
          peer->order.Enter(*tid);
          peer->order.Landed(table_, *tid, finish);
          return *tid;
        });
  }

  std::string Transports(const EnginePeer& peer) const override {
    return absl::StrCat("cuda_ipc (", Where(static_cast<const IpcPeer&>(peer)), ")");
  }

  void AddCounters(TransportCounters& c) const override {
    c.transports = "cuda_ipc (batched copy kernel; cudaMemcpyAsync for runs of 64 MiB and more)";
    absl::MutexLock lock(&mu_);
    c.senders_lost = listener_ ? listener_->senders_lost() : 0;
    c.senders_refused += listener_ ? listener_->senders_refused() : 0;
  }

 private:
  const TransportOptions& options_;  // the front's, which outlives this engine
  std::shared_ptr<spdlog::logger> log_;
  NotificationInbox& inbox_;  // the front's
  BatchTable& table_;         // the front's
  cudaStream_t stream_;
  mutable absl::Mutex mu_;
  const KvCache* pool_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::unique_ptr<notify::NotifyListener> listener_ ABSL_GUARDED_BY(mu_);
  std::vector<std::weak_ptr<IpcPeer>> peers_ ABSL_GUARDED_BY(mu_);  // to cancel at the end
  std::unique_ptr<CompletionThread> completions_;  // reset first in the destructor
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> MakeCudaIpcTransport(const TransportOptions& options) {
  if (!cuda::CudaAvailable()) return absl::UnavailableError("cuda-ipc: no CUDA device");
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(0));
  cudaStream_t stream = nullptr;
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return MakeFrontTransport(options, kBackend, [stream](const EngineContext& context) {
    return absl::StatusOr<std::unique_ptr<TransferEngine>>(
        std::make_unique<CudaIpcEngine>(context, stream));
  });
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateCudaIpcPoolMemory(size_t bytes) {
  return cuda::AllocateDeviceMemory(bytes, 0);
}

}  // namespace pdserve::transfer::cuda_ipc
