#include "transfer/nccl/nccl_transport.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "kvcache/cuda/cuda_check.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "transfer/notify/notify_channel.h"
#include "transfer/nccl/nccl_comm.h"
#include "transfer/nccl/nccl_protocol.h"
#include "transfer/nccl/nccl_receiver.h"
#include "transfer/nccl/nccl_sender.h"
#include "transfer/peer_order.h"
#include "transfer/pool_descriptor.h"
#include "transfer/transport_front.h"

namespace pdserve::transfer::nccl {
namespace {

constexpr char kBackend[] = "nccl";

class NcclEngine final : public TransferEngine {
 public:
  explicit NcclEngine(const EngineContext& context)
      : options_(context.options),
        table_(context.table),
        receiver_(context.options.agent_name, context.inbox, context.options.batch_timeout),
        sender_(context.options, context.table) {
    control_.SetObserver([this] { Wake(); },
                         [this](const std::string& sender) {
                           {
                             std::lock_guard lock(mu_);
                             lost_.push_back(sender);
                           }
                           Wake();
                         });
    thread_ = std::thread([this] {
      NameThisThread("nccl-progress");
      Loop();
    });
  }

  ~NcclEngine() override {
    std::unique_ptr<notify::NotifyListener> listener;
    {
      std::lock_guard lock(mu_);
      listener = std::move(listener_);
    }
    listener.reset();  // no more control messages or observer calls
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    Wake();
    thread_.join();  // ends every batch in flight (Cancelled) and aborts every communicator
  }

  absl::Status Register(const KvCache& cache, PoolDescriptor& descriptor) override {
    if (cache.memory().kind() != MemoryKind::kCuda) {
      return absl::InvalidArgumentError(
          "nccl needs a KV pool in device memory (AllocatePoolMemory with backend nccl)");
    }
    absl::StatusOr<std::unique_ptr<notify::NotifyListener>> listener =
        notify::NotifyListener::Start(&control_, options_.agent_name, options_.peer_credential);
    if (!listener.ok()) return listener.status();
    {
      std::lock_guard lock(mu_);
      pool_ = &cache;
      pool_set_ = true;
    }
    descriptor.fields["socket"] = (*listener)->address();
    {
      std::lock_guard lock(mu_);
      listener_ = std::move(*listener);
    }
    Wake();
    descriptor.fields["gpu"] = cuda::PoolGpuId(cache);
    ComponentLogger("transfer")
        ->info("agent {}: registered device KV pool of {} blocks for NCCL (GPU {})",
               options_.agent_name, cache.geometry().num_blocks(), cuda::PoolGpuId(cache));
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<EnginePeer>> Connect(const PoolDescriptor& d,
                                                      const KvGeometry& geometry) override {
    absl::StatusOr<std::string> socket = d.Field("socket");
    absl::StatusOr<std::string> gpu = d.Field("gpu");
    if (!socket.ok() || !gpu.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("nccl descriptor of agent '", d.agent, "' lacks its socket or gpu field"));
    }
    if (*gpu == cuda::PoolGpuId(*Pool())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "nccl: KV peer '", d.agent, "' has its pool on this process's GPU (", *gpu,
          "); NCCL refuses two ranks of one communicator on one device: put prefill and decode "
          "on different GPUs (pdserve cluster --prefill-gpus 0 --decode-gpus 1) or use cuda-ipc"));
    }
    auto peer = std::make_shared<NcclPeer>(d.agent, geometry);
    absl::StatusOr<std::unique_ptr<notify::NotifySender>> channel =
        notify::NotifySender::Connect(*socket, options_.agent_name, options_.peer_credential);
    if (!channel.ok()) return channel.status();
    peer->channel = std::move(*channel);
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&peer->stream, cudaStreamNonBlocking));
    ComponentLogger("transfer")
        ->info("agent {}: nccl: KV peer '{}' (GPU {}, {} blocks); communicator at first batch",
               options_.agent_name, absl::CEscape(d.agent), absl::CEscape(*gpu), d.num_blocks);
    return peer;
  }

  void Disconnect(EnginePeer& engine_peer) override {
    auto& peer = static_cast<NcclPeer&>(engine_peer);
    {
      std::lock_guard lock(peer.mu);
      if (peer.failed.ok()) peer.failed = absl::CancelledError("KV peer removed");
    }
    {
      std::lock_guard lock(mu_);
      disconnects_.push_back(&peer);  // the front keeps it alive until this returns; see Loop
      peers_dirty_ = true;
    }
    Wake();
    // Wait for the thread to end the peer's batches: after RemovePeer nothing of it runs.
    std::unique_lock lock(mu_);
    disconnected_cv_.wait(lock, [&] {
      return std::find(disconnects_.begin(), disconnects_.end(), &peer) == disconnects_.end();
    });
  }

  absl::StatusOr<TransferId> Post(const std::shared_ptr<EnginePeer>& engine_peer,
                                  const PlannedBatch& batch) override {
    auto peer = std::static_pointer_cast<NcclPeer>(engine_peer);
    if (absl::Status failed = peer->Failed(); !failed.ok()) {
      return absl::UnavailableError(absl::StrCat("KV peer '", peer->agent, "': ",
                                                 failed.message()));
    }
    absl::StatusOr<TransferId> tid =
        table_.Begin(batch.bytes, static_cast<uint32_t>(batch.ops.size()));
    if (!tid.ok()) return tid.status();
    peer->order.Enter(*tid);
    {
      std::lock_guard lock(mu_);
      jobs_.push_back({peer, Job{*tid, {batch.copies.begin(), batch.copies.end()},
                                 batch.notification}});
    }
    Wake();
    return *tid;
  }

  std::string Transports(const EnginePeer&) const override { return "nccl (p2p send/recv)"; }

  void AddCounters(TransportCounters& c) const override {
    c.transports = absl::StrCat("nccl ", NcclRuntimeSummary(), " (p2p send/recv)");
    std::lock_guard lock(mu_);
    c.senders_lost = listener_ ? listener_->senders_lost() : 0;
    c.senders_refused += listener_ ? listener_->senders_refused() : 0;
  }

 private:
  void Wake() {
    {
      std::lock_guard lock(wake_mu_);
      woken_ = true;
    }
    wake_cv_.notify_one();
  }

  void Loop();
  // Moves one peer's batches on; true while it has any queued or in flight.
  const KvCache* Pool() const {
    std::lock_guard lock(mu_);
    return pool_;
  }

  const TransportOptions& options_;
  BatchTable& table_;
  NotificationInbox control_;  // the receive path's control messages, read by the thread
  NcclReceiver receiver_;      // the thread's
  NcclSender sender_;          // the thread's
  std::vector<std::shared_ptr<NcclPeer>> peers_;  // the thread's: peers with work

  mutable std::mutex mu_;
  std::condition_variable disconnected_cv_;
  const KvCache* pool_ = nullptr;
  bool pool_set_ = false;
  std::deque<std::pair<std::shared_ptr<NcclPeer>, Job>> jobs_;
  std::vector<NcclPeer*> disconnects_;
  std::vector<std::string> lost_;
  bool peers_dirty_ = false;
  bool stop_ = false;

  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool woken_ = false;

  std::unique_ptr<notify::NotifyListener> listener_;
  std::thread thread_;
};

void NcclEngine::Loop() {
  cudaSetDevice(0);
  int64_t busy_since = 0;
  for (;;) {
    std::deque<std::pair<std::shared_ptr<NcclPeer>, Job>> jobs;
    std::vector<NcclPeer*> disconnects;
    std::vector<std::string> lost;
    bool stop;
    {
      std::lock_guard lock(mu_);
      jobs.swap(jobs_);
      disconnects = disconnects_;
      lost.swap(lost_);
      stop = stop_;
      if (pool_set_) {
        receiver_.SetPool(pool_);
        sender_.SetPool(pool_);
      }
    }
    for (auto& [peer, job] : jobs) {
      if (std::find(peers_.begin(), peers_.end(), peer) == peers_.end()) peers_.push_back(peer);
      peer->queued.push_back(std::move(job));
    }
    for (NcclPeer* gone : disconnects) {
      for (const std::shared_ptr<NcclPeer>& p : peers_) {
        if (p.get() == gone) sender_.Fail(*p, gone->Failed());
      }
    }
    if (!disconnects.empty()) {
      std::lock_guard lock(mu_);
      std::erase_if(disconnects_, [&](NcclPeer* p) {
        return std::find(disconnects.begin(), disconnects.end(), p) != disconnects.end();
      });
      disconnected_cv_.notify_all();
    }
    for (Notification& n : control_.TakeAll()) receiver_.OnMessage(n.sender, n.message);
    for (const std::string& sender : lost) receiver_.OnSenderLost(sender);
    if (stop) {
      for (const std::shared_ptr<NcclPeer>& p : peers_) {
        sender_.Fail(*p, absl::CancelledError("the KV transport is shutting down"));
      }
      peers_.clear();
      return;  // the receiver's communicators are aborted by its destructor
    }
    bool busy = receiver_.Advance();
    for (const std::shared_ptr<NcclPeer>& p : peers_) busy = sender_.Advance(p) || busy;
    std::erase_if(peers_, [](const std::shared_ptr<NcclPeer>& p) {
      return p->queued.empty() && p->in_flight.empty() && p->comm == nullptr;
    });
    if (busy) {
      // Poll, yielding the core, for as long as a large batch takes; then short sleeps (the
      // cuda-ipc completion thread's rule: a blocking wake-up costs tens of microseconds).
      const int64_t now = MonotonicNanos();
      if (busy_since == 0) busy_since = now;
      if (now - busy_since < 5'000'000) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
      continue;
    }
    busy_since = 0;
    std::unique_lock lock(wake_mu_);
    wake_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return woken_; });
    woken_ = false;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> MakeNcclTransport(const TransportOptions& options) {
  if (!cuda::CudaAvailable()) return absl::UnavailableError("nccl: no CUDA device");
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(0));
  return MakeFrontTransport(options, kBackend, [](const EngineContext& context) {
    return absl::StatusOr<std::unique_ptr<TransferEngine>>(std::make_unique<NcclEngine>(context));
  });
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateNcclPoolMemory(size_t bytes) {
  return cuda::AllocateDeviceMemory(bytes, 0);
}

std::string NcclRuntimeSummary() {
  int version = 0;
  if (ncclGetVersion(&version) != ncclSuccess) return "(version unknown)";
  return absl::StrCat(version / 10000, ".", (version / 100) % 100, ".", version % 100);
}

}  // namespace pdserve::transfer::nccl
