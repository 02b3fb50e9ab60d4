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
#include "transfer/local/notify_channel.h"
#include "transfer/notification_inbox.h"
#include "transfer/peer_order.h"
#include "transfer/pool_descriptor.h"
#include "transfer/stream_copy.h"

namespace pdserve::transfer::local {
namespace {

constexpr char kBackend[] = "local";

struct LocalPeer {
  PoolDescriptor descriptor;
  KvGeometry geometry;
  std::unique_ptr<KvMemory> mapping;
  std::unique_ptr<NotifySender> notifier;
  // Zero-copy: a view of the mapped pool for windows, made at the first OpenWindow.
  std::unique_ptr<KvCache> view;
  std::shared_ptr<std::atomic<bool>> removed = std::make_shared<std::atomic<bool>>(false);
  // Batches that may not end yet: a notification covers every batch before it (Submit).
  std::unique_ptr<PeerOrder> order = std::make_unique<PeerOrder>();
};

class LocalTransport final : public KvTransport {
 public:
  explicit LocalTransport(const TransportOptions& options)
      : options_(options),
        log_(ComponentLogger("transfer")),
        table_(std::max(1, options.max_inflight_batches)),
        engine_(options.copy_threads > 0 ? options.copy_threads : DefaultCopyThreads()),
        stream_bytes_(StreamMinBytes("PDSERVE_LOCAL_STREAM_BYTES")) {}

  ~LocalTransport() override {
    // Cancel queued copies to peers (their handles end Cancelled) before the engine drains.
    std::lock_guard lock(mu_);
    for (auto& [id, peer] : peers_) peer->removed->store(true);
  }

  std::string backend() const override { return kBackend; }

  absl::Status RegisterPool(const KvCache& cache) override {
    std::lock_guard lock(mu_);
    if (pool_ != nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("agent '", options_.agent_name, "' already registered a KV pool"));
    }
    descriptor_ = DescribePool(kBackend, options_.agent_name, cache.geometry());
    if (!cache.memory().shm_name().empty()) {
      // Only a pool in shared memory can receive: give it a notification channel.
      absl::StatusOr<std::unique_ptr<NotifyListener>> listener =
          NotifyListener::Start(inbox_.get(), options_.agent_name, options_.peer_credential);
      if (!listener.ok()) return listener.status();
      listener_ = std::move(*listener);
      descriptor_.fields["shm_name"] = cache.memory().shm_name();
      descriptor_.fields["socket"] = listener_->address();
    }
    pool_ = &cache;
    ++registrations_;
    log_->info("agent {}: registered KV pool of {} blocks x {} bytes ({}){}", options_.agent_name,
               cache.geometry().num_blocks(), cache.geometry().block_bytes(),
               std::string(KvLayoutName(cache.geometry().layout())),
               listener_ ? absl::StrCat(", shm ", cache.memory().shm_name()) : "");
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ExportDescriptor() const override {
    std::lock_guard lock(mu_);
    if (pool_ == nullptr) return absl::FailedPreconditionError("no KV pool registered");
    // A pool in private memory still exports its geometry; a sender refuses it at LoadPeer.
    return descriptor_.Serialize();
  }

  absl::StatusOr<PeerId> LoadPeer(const std::string& bytes) override {
    absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(bytes);
    if (!d.ok()) return d.status();
    const KvCache* pool;
    {
      std::lock_guard lock(mu_);
      pool = pool_;
    }
    if (pool == nullptr) return absl::FailedPreconditionError("register a KV pool before LoadPeer");
    if (absl::Status s = CheckCompatible(pool->geometry(), kBackend, *d); !s.ok()) return s;
    absl::StatusOr<std::string> shm_name = d->Field("shm_name");
    absl::StatusOr<std::string> socket = d->Field("socket");
    if (!shm_name.ok() || !socket.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "KV pool of agent '", d->agent,
          "' is not in POSIX shared memory: it cannot receive with the local backend (allocate "
          "it with AllocatePoolMemory)"));
    }

    auto peer = std::make_shared<LocalPeer>(LocalPeer{
        *d, KvGeometry(pool->config(), d->num_blocks, d->layout), nullptr, nullptr});
    absl::StatusOr<std::unique_ptr<KvMemory>> mapping =
        OpenSharedMemory(*shm_name, static_cast<size_t>(d->region_bytes()));
    if (!mapping.ok()) return mapping.status();
    peer->mapping = std::move(*mapping);
    absl::StatusOr<std::unique_ptr<NotifySender>> notifier =
        NotifySender::Connect(*socket, options_.agent_name, options_.peer_credential);
    if (!notifier.ok()) return notifier.status();
    peer->notifier = std::move(*notifier);

    std::lock_guard lock(mu_);
    const PeerId id = next_peer_++;
    peers_[id] = std::move(peer);
    ++peers_loaded_;
    log_->info("agent {}: loaded KV peer '{}' ({} blocks, shm {})", options_.agent_name, d->agent,
               d->num_blocks, *shm_name);
    return id;
  }

  absl::Status RemovePeer(PeerId id) override {
    std::lock_guard lock(mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) {
      return absl::FailedPreconditionError(absl::StrCat("unknown KV peer ", id));
    }
    it->second->removed->store(true);
    peers_.erase(it);  // in-flight jobs hold their own reference to the mapping
    return absl::OkStatus();
  }

  absl::StatusOr<TransferId> Submit(PeerId id, std::span<const BlockCopy> copies,
                                    const std::string& notification) override {
    std::shared_ptr<LocalPeer> peer;
    const KvCache* pool;
    {
      std::lock_guard lock(mu_);
      auto it = peers_.find(id);
      if (it == peers_.end()) {
        return absl::FailedPreconditionError(absl::StrCat("unknown or removed KV peer ", id));
      }
      peer = it->second;
      pool = pool_;
    }
    if (notification.size() > kMaxNotificationBytes) {
      return absl::InvalidArgumentError("KV transfer notification too long");
    }
    // Reused per thread: planning a batch allocates nothing once warm.
    thread_local std::vector<CopyOp> ops;
    if (absl::Status s = PlanCopies(pool->geometry(), peer->geometry, copies, ops); !s.ok()) {
      return s;
    }
    const uint64_t bytes = TotalBytes(ops);
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
          CopyOps(pool->base(), peer->mapping->data(), ops, peer->removed.get(), stream);
      return table_.AddFinished(bytes, op_count, submit_ns, Outcome(*peer, notification, !copied));
    }
    absl::StatusOr<TransferId> tid = table_.Begin(bytes, op_count);
    if (!tid.ok()) return tid.status();
    // The copy threads may finish batches out of order (a large one's chunks outlast a small
    // one behind it): the peer's order holds each outcome, notification included, until every
    // batch to the peer before it ended, and fails it if one of those failed.
    peer->order->Enter(*tid);
    if (small) {
      const bool copied =
          CopyOps(pool->base(), peer->mapping->data(), ops, peer->removed.get(), stream);
      peer->order->Landed(table_, *tid, [this, peer, notification, copied] {
        return Outcome(*peer, notification, !copied);
      });
      return *tid;
    }
    auto job = std::make_shared<CopyJob>();
    job->ops.assign(ops.begin(), ops.end());
    job->src_base = pool->base();
    job->dst_base = peer->mapping->data();
    job->cancelled = peer->removed;
    job->stream = stream;
    // A raw pointer: done runs on a copy thread that holds the job.
    job->done = [this, peer, id = *tid, notification, j = job.get()](bool cancelled) {
      table_.SetCopyWait(id, j->waited_ns.load(std::memory_order_relaxed));
      peer->order->Landed(table_, id, [this, peer, notification, cancelled] {
        return Outcome(*peer, notification, cancelled);
      });
    };
    engine_.Run(std::move(job));
    return *tid;
  }


  absl::StatusOr<std::unique_ptr<KvWriteWindow>> OpenWindow(
      PeerId id, std::span<const BlockId> blocks) override {
    std::shared_ptr<LocalPeer> peer;
    const KvCache* pool;
    {
      std::lock_guard lock(mu_);
      auto it = peers_.find(id);
      if (it == peers_.end()) {
        return absl::FailedPreconditionError(absl::StrCat("unknown or removed KV peer ", id));
      }
      peer = it->second;
      pool = pool_;
      if (peer->view == nullptr) {
        absl::StatusOr<std::unique_ptr<KvCache>> view = KvCache::Create(
            pool->config(), peer->descriptor.num_blocks, peer->descriptor.layout,
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
          // The kernels' stores precede the ring write that publishes the notification (its
          // release store), and their threads joined before the caller announced.
          if (peer->order->Idle()) {
            return table_.AddFinished(0, 0, MonotonicNanos(), Outcome(*peer, notification, false));
          }
          // A batch of 0 bytes like any: it waits for the batches to this peer before it
          // (kv_transport.h, Ordering).
          absl::StatusOr<TransferId> tid = table_.Begin(0, 0);
          if (!tid.ok()) return tid.status();
          peer->order->Enter(*tid);
          peer->order->Landed(table_, *tid, [this, peer, notification] {
            return Outcome(*peer, notification, false);
          });
          return *tid;
        });
  }

  absl::StatusOr<bool> Poll(TransferId id) override { return table_.Poll(id); }
  absl::Status Wait(TransferId id, absl::Duration timeout) override {
    return table_.Wait(id, timeout);
  }
  absl::StatusOr<TransferStats> Stats(TransferId id) const override { return table_.Stats(id); }

  std::vector<Notification> TakeNotifications() override { return inbox_->TakeAll(); }
  absl::Status WaitForNotification(const std::string& message, absl::Duration timeout) override {
    return inbox_->WaitFor(message, timeout);
  }

  std::string PeerTransports(PeerId) const override { return "memcpy"; }

  TransportCounters counters() const override {
    TransportCounters c;
    table_.FillCounters(c);
    c.notifications_received = inbox_->received();
    c.transports = absl::StrCat("memcpy (inline up to ", CopyEngine::kInlineBytes / 1024,
                                " KiB, else x", engine_.threads(), " threads; up to ",
                                CopyEngine::kCallerShareMaxBytes >> 20,
                                " MiB the submitter copies the first share; streaming stores above ",
                                stream_bytes_ >> 10, " KiB)");
    std::lock_guard lock(mu_);
    c.registrations = registrations_;
    c.peers_loaded = peers_loaded_;
    c.senders_lost = listener_ ? listener_->senders_lost() : 0;
    c.senders_refused = (listener_ ? listener_->senders_refused() : 0) + inbox_->dropped();
    return c;
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

  const TransportOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  // Shared with the other engine of an `auto` transport (TransportOptions::inbox).
  const std::shared_ptr<NotificationInbox> inbox_ =
      options_.inbox ? options_.inbox : std::make_shared<NotificationInbox>();
  BatchTable table_;
  // std::mutex: Submit takes it once per batch to find the peer, and Debian's Abseil (built
  // without NDEBUG) adds held-lock bookkeeping to every absl::Mutex operation.
  mutable std::mutex mu_;
  const KvCache* pool_ = nullptr;
  PoolDescriptor descriptor_;
  std::unique_ptr<NotifyListener> listener_;
  absl::flat_hash_map<PeerId, std::shared_ptr<LocalPeer>> peers_;
  PeerId next_peer_ = 1;
  uint64_t registrations_ = 0;
  uint64_t peers_loaded_ = 0;
  // Last member: destroyed first, so its threads finish while everything above still exists.
  CopyEngine engine_;
  // Batches above this many bytes are copied with streaming stores (transfer/stream_copy.h).
  const uint64_t stream_bytes_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> MakeLocalTransport(const TransportOptions& options) {
  return std::make_unique<LocalTransport>(options);
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateLocalPoolMemory(size_t bytes) {
  return CreateSharedMemory(bytes);
}

}  // namespace pdserve::transfer::local
