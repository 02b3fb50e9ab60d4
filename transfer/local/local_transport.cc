#include "transfer/local/local_transport.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/parallel_for.h"
#include "transfer/batch_table.h"
#include "transfer/copy_plan.h"
#include "transfer/local/copy_engine.h"
#include "transfer/notify/notify_channel.h"
#include "transfer/notification_inbox.h"
#include "transfer/peer_order.h"
#include "transfer/pool_descriptor.h"
#include "transfer/stream_copy.h"
#include "transfer/transport_front.h"

namespace pdserve::transfer::local {
namespace {

using notify::NotifyListener;
using notify::NotifySender;

constexpr char kBackend[] = "local";

struct LocalPeer final : EnginePeer {
  explicit LocalPeer(PoolDescriptor d) : descriptor(std::move(d)) {}
  PoolDescriptor descriptor;
  std::unique_ptr<KvMemory> mapping;
  std::unique_ptr<NotifySender> notifier;
  // Zero-copy: a view of the mapped pool for windows, made at the first OpenWindow.
  std::unique_ptr<KvCache> view;
  std::shared_ptr<std::atomic<bool>> removed = std::make_shared<std::atomic<bool>>(false);
  // Batches that may not end yet: a notification covers every batch before it (Submit).
  std::unique_ptr<PeerOrder> order = std::make_unique<PeerOrder>();
};

// `local`'s engine: copy threads memcpy into the peer's pool mapped from POSIX shared memory,
// and the notification goes over the peer's ring (notify_channel.h). The front
// (transport_front.h) does the descriptor, the peer table, planning, handles and the inbox.
class LocalEngine final : public TransferEngine {
 public:
  explicit LocalEngine(const EngineContext& context)
      : context_(context),
        log_(ComponentLogger("transfer")),
        engine_(context.options.copy_threads > 0 ? context.options.copy_threads
                                                  : DefaultCopyThreads()),
        stream_bytes_(StreamMinBytes("PDSERVE_LOCAL_STREAM_BYTES")) {}

  ~LocalEngine() override {
    // Cancel queued copies to peers (their handles end Cancelled) before the engine drains.
    std::lock_guard lock(mu_);
    for (const std::weak_ptr<LocalPeer>& p : peers_) {
      if (std::shared_ptr<LocalPeer> peer = p.lock()) peer->removed->store(true);
    }
  }

  absl::Status Register(const KvCache& cache, PoolDescriptor& descriptor) override {
    const std::string& agent = context_.options.agent_name;
    if (!cache.memory().shm_name().empty()) {
      // Only a pool in shared memory can receive: give it a notification channel.
      absl::StatusOr<std::unique_ptr<NotifyListener>> listener =
          NotifyListener::Start(&context_.inbox, agent, context_.options.peer_credential);
      if (!listener.ok()) return listener.status();
      listener_ = std::move(*listener);
      descriptor.fields["shm_name"] = cache.memory().shm_name();
      descriptor.fields["socket"] = listener_->address();
    }
    pool_ = &cache;  // before the front publishes the pool: every Connect and Post see it
    log_->info("agent {}: registered KV pool of {} blocks x {} bytes ({}){}", agent,
               cache.geometry().num_blocks(), cache.geometry().block_bytes(),
               std::string(KvLayoutName(cache.geometry().layout())),
               listener_ ? absl::StrCat(", shm ", cache.memory().shm_name()) : "");
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<EnginePeer>> Connect(const PoolDescriptor& d,
                                                      const KvGeometry&) override {
    absl::StatusOr<std::string> shm_name = d.Field("shm_name");
    absl::StatusOr<std::string> socket = d.Field("socket");
    if (!shm_name.ok() || !socket.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "KV pool of agent '", d.agent,
          "' is not in POSIX shared memory: it cannot receive with the local backend (allocate "
          "it with AllocatePoolMemory)"));
    }
    auto peer = std::make_shared<LocalPeer>(d);
    absl::StatusOr<std::unique_ptr<KvMemory>> mapping =
        OpenSharedMemory(*shm_name, static_cast<size_t>(d.region_bytes()));
    if (!mapping.ok()) return mapping.status();
    peer->mapping = std::move(*mapping);
    absl::StatusOr<std::unique_ptr<NotifySender>> notifier = NotifySender::Connect(
        *socket, context_.options.agent_name, context_.options.peer_credential);
    if (!notifier.ok()) return notifier.status();
    peer->notifier = std::move(*notifier);
    {
      std::lock_guard lock(mu_);
      std::erase_if(peers_, [](const std::weak_ptr<LocalPeer>& p) { return p.expired(); });
      peers_.push_back(peer);
    }
    log_->info("agent {}: loaded KV peer '{}' ({} blocks, shm {})", context_.options.agent_name,
               d.agent, d.num_blocks, *shm_name);
    return peer;
  }

  void Disconnect(EnginePeer& peer) override {
    // In-flight jobs hold their own reference to the mapping; queued ones end Cancelled.
    static_cast<LocalPeer&>(peer).removed->store(true);
  }

  absl::StatusOr<TransferId> Post(const std::shared_ptr<EnginePeer>& engine_peer,
                                  const PlannedBatch& batch) override {
    std::shared_ptr<LocalPeer> peer = std::static_pointer_cast<LocalPeer>(engine_peer);
    BatchTable& table = context_.table;
    const std::span<const CopyOp> ops = batch.ops;
    const std::string& notification = batch.notification;
    const uint64_t bytes = batch.bytes;
    const uint32_t op_count = static_cast<uint32_t>(ops.size());
    // No peer-alive check here: a peer that is gone fails the batch when its completion
    // notification is written (the ring's liveness lock, or EPIPE on the socket), and a batch
    // without a notification checks the same lock in Outcome; neither costs a syscall.
    const bool small = engine_.SharesFor(bytes) == 0;
    const bool stream = bytes > stream_bytes_;
    if (small && peer->order->Idle()) {
      // Small, and nothing earlier to this peer still running: copied right here, like
      // CopyEngine::Run would, minus the job it allocates, and entered in the table once it
      // ended.
      const int64_t submit_ns = MonotonicNanos();
      const bool copied =
          CopyOps(pool_->base(), peer->mapping->data(), ops, peer->removed.get(), stream);
      return table.AddFinished(bytes, op_count, submit_ns, Outcome(*peer, notification, !copied));
    }
    absl::StatusOr<TransferId> tid = table.Begin(bytes, op_count);
    if (!tid.ok()) return tid.status();
    // The copy threads may finish batches out of order (a large one's chunks outlast a small
    // one behind it): the peer's order holds each outcome, notification included, until every
    // batch to the peer before it ended, and fails it if one of those failed.
    peer->order->Enter(*tid);
    if (small) {
      const bool copied =
          CopyOps(pool_->base(), peer->mapping->data(), ops, peer->removed.get(), stream);
      peer->order->Landed(table, *tid, [this, peer, notification, copied] {
        return Outcome(*peer, notification, !copied);
      });
      return *tid;
    }
    auto job = std::make_shared<CopyJob>();
    job->ops.assign(ops.begin(), ops.end());
    job->src_base = pool_->base();
    job->dst_base = peer->mapping->data();
    job->cancelled = peer->removed;
    job->stream = stream;
    // A raw pointer: done runs on a copy thread that holds the job.
    job->done = [this, peer, id = *tid, notification, j = job.get()](bool cancelled) {
      context_.table.SetCopyWait(id, j->waited_ns.load(std::memory_order_relaxed));
      peer->order->Landed(context_.table, id, [this, peer, notification, cancelled] {
        return Outcome(*peer, notification, cancelled);
      });
    };
    engine_.Run(std::move(job));
    return *tid;
  }

  absl::StatusOr<std::unique_ptr<KvWriteWindow>> OpenWindow(
      const std::shared_ptr<EnginePeer>& engine_peer, std::span<const BlockId> blocks) override {
    std::shared_ptr<LocalPeer> peer = std::static_pointer_cast<LocalPeer>(engine_peer);
    {
      std::lock_guard lock(mu_);
      if (peer->view == nullptr) {
        absl::StatusOr<std::unique_ptr<KvCache>> view = KvCache::Create(
            pool_->config(), peer->descriptor.num_blocks, peer->descriptor.layout,
            std::make_unique<BorrowedKvMemory>(peer->mapping->data(), peer->mapping->size(),
                                               MemoryKind::kHost));
        if (!view.ok()) return view.status();
        peer->view = std::move(*view);
      }
    }
    // The aliasing pointer keeps the peer (its mapping) alive as long as the window.
    std::shared_ptr<const KvCache> view(peer, peer->view.get());
    return KvWriteWindow::Open(
        std::move(view), blocks,
        [this, peer](const std::string& notification) -> absl::StatusOr<TransferId> {
          if (notification.size() > kMaxNotificationBytes) {
            return absl::InvalidArgumentError("KV transfer notification too long");
          }
          BatchTable& table = context_.table;
          // The kernels' stores precede the ring write that publishes the notification (its
          // release store), and their threads joined before the caller announced.
          if (peer->order->Idle()) {
            return table.AddFinished(0, 0, MonotonicNanos(), Outcome(*peer, notification, false));
          }
          // A batch of 0 bytes like any: it waits for the batches to this peer before it
          // (kv_transport.h, Ordering).
          absl::StatusOr<TransferId> tid = table.Begin(0, 0);
          if (!tid.ok()) return tid.status();
          peer->order->Enter(*tid);
          peer->order->Landed(table, *tid, [this, peer, notification] {
            return Outcome(*peer, notification, false);
          });
          return *tid;
        });
  }

  std::string Transports(const EnginePeer&) const override { return "memcpy"; }

  void AddCounters(TransportCounters& c) const override {
    c.transports = absl::StrCat("memcpy (inline up to ", CopyEngine::kInlineBytes / 1024,
                                " KiB, else x", engine_.threads(), " threads; up to ",
                                CopyEngine::kCallerShareMaxBytes >> 20,
                                " MiB the submitter copies the first share; streaming stores above ",
                                stream_bytes_ >> 10, " KiB)");
    if (listener_ != nullptr) {  // set by Register, before the front publishes the pool
      c.senders_lost = listener_->senders_lost();
      c.senders_refused += listener_->senders_refused();
    }
  }

 private:
  // How a batch whose bytes are in the peer's pool (or that was cancelled) ends: the
  // notification (which also finds a dead peer) or, without one, the peer's liveness decides.
  absl::Status Outcome(LocalPeer& peer, const std::string& notification, bool cancelled) {
    if (cancelled || peer.removed->load()) {
      return absl::CancelledError(absl::StrCat("KV peer '", peer.descriptor.agent,
                                               "' removed during a batch (request ",
                                               notification, ")"));
    }
    if (!notification.empty()) return peer.notifier->Send(notification);
    if (peer.notifier->PeerGone()) return absl::UnavailableError("KV peer went away");
    return absl::OkStatus();
  }

  const EngineContext context_;
  std::shared_ptr<spdlog::logger> log_;
  const KvCache* pool_ = nullptr;  // Register
  std::unique_ptr<NotifyListener> listener_;
  std::mutex mu_;  // peers_ and the peers' lazily made window views
  std::vector<std::weak_ptr<LocalPeer>> peers_;
  // Last member: destroyed first, so its threads finish while everything above still exists.
  CopyEngine engine_;
  // Batches above this many bytes are copied with streaming stores (transfer/stream_copy.h).
  const uint64_t stream_bytes_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> MakeLocalTransport(const TransportOptions& options) {
  return MakeFrontTransport(options, kBackend, [](const EngineContext& context) {
    return absl::StatusOr<std::unique_ptr<TransferEngine>>(std::make_unique<LocalEngine>(context));
  });
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateLocalPoolMemory(size_t bytes) {
  return CreateSharedMemory(bytes);
}

}  // namespace pdserve::transfer::local
