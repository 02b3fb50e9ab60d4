#include "transfer/local/local_transport.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "transfer/batch_table.h"
#include "transfer/copy_plan.h"
#include "transfer/local/copy_engine.h"
#include "transfer/local/notify_channel.h"
#include "transfer/notification_inbox.h"
#include "transfer/pool_descriptor.h"

namespace pdserve::transfer::local {
namespace {

constexpr char kBackend[] = "local";

struct LocalPeer {
  PoolDescriptor descriptor;
  KvGeometry geometry;
  std::unique_ptr<KvMemory> mapping;
  std::unique_ptr<NotifySender> notifier;
  std::shared_ptr<std::atomic<bool>> removed = std::make_shared<std::atomic<bool>>(false);
};

class LocalTransport final : public KvTransport {
 public:
  explicit LocalTransport(const TransportOptions& options)
      : options_(options),
        log_(ComponentLogger("transfer")),
        table_(std::max(1, options.max_inflight_batches)),
        engine_(options.copy_threads > 0
                    ? options.copy_threads
                    : std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 4)) {}

  ~LocalTransport() override {
    // Cancel queued copies to peers (their handles end Cancelled) before the engine drains.
    absl::MutexLock lock(&mu_);
    for (auto& [id, peer] : peers_) peer->removed->store(true);
  }

  std::string backend() const override { return kBackend; }

  absl::Status RegisterPool(const KvCache& cache) override {
    absl::MutexLock lock(&mu_);
    if (pool_ != nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("agent '", options_.agent_name, "' already registered a KV pool"));
    }
    descriptor_ = DescribePool(kBackend, options_.agent_name, cache.geometry());
    if (!cache.memory().shm_name().empty()) {
      // Only a pool in shared memory can receive: give it a notification channel.
      absl::StatusOr<std::unique_ptr<NotifyListener>> listener =
          NotifyListener::Start(&inbox_, options_.agent_name);
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
    absl::MutexLock lock(&mu_);
    if (pool_ == nullptr) return absl::FailedPreconditionError("no KV pool registered");
    // A pool in private memory still exports its geometry; a sender refuses it at LoadPeer.
    return descriptor_.Serialize();
  }

  absl::StatusOr<PeerId> LoadPeer(const std::string& bytes) override {
    absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(bytes);
    if (!d.ok()) return d.status();
    const KvCache* pool;
    {
      absl::MutexLock lock(&mu_);
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
        NotifySender::Connect(*socket, options_.agent_name);
    if (!notifier.ok()) return notifier.status();
    peer->notifier = std::move(*notifier);

    absl::MutexLock lock(&mu_);
    const PeerId id = next_peer_++;
    peers_[id] = std::move(peer);
    ++peers_loaded_;
    log_->info("agent {}: loaded KV peer '{}' ({} blocks, shm {})", options_.agent_name, d->agent,
               d->num_blocks, *shm_name);
    return id;
  }

  absl::Status RemovePeer(PeerId id) override {
    absl::MutexLock lock(&mu_);
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
      absl::MutexLock lock(&mu_);
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
    auto job = std::make_shared<CopyJob>();
    if (absl::Status s = PlanCopies(pool->geometry(), peer->geometry, copies, job->ops); !s.ok()) {
      return s;
    }
    // No peer-alive check here: a peer that is gone fails the batch when its completion
    // notification is written (the ring's liveness lock, or EPIPE on the socket), and a batch
    // without a notification checks the same lock in `done`; neither costs a syscall.
    absl::StatusOr<TransferId> tid =
        table_.Begin(TotalBytes(job->ops), static_cast<uint32_t>(job->ops.size()));
    if (!tid.ok()) return tid.status();
    job->src_base = pool->base();
    job->dst_base = peer->mapping->data();
    job->cancelled = peer->removed;
    job->done = [this, peer, id = *tid, notification](bool cancelled) {
      if (cancelled) {
        table_.Complete(id, absl::CancelledError(absl::StrCat(
                                "KV peer '", peer->descriptor.agent, "' removed during batch ",
                                id, " (request ", notification, ")")));
        return;
      }
      absl::Status s;
      if (!notification.empty()) s = peer->notifier->Send(notification);
      // No notification to carry: the peer's liveness is still what makes the batch good
      // (NotifyRing's liveness lock: no syscall).
      else if (peer->notifier->PeerGone()) s = absl::UnavailableError("KV peer went away");
      table_.Complete(id, s);
    };
    engine_.Run(std::move(job));
    return *tid;
  }

  absl::StatusOr<bool> Poll(TransferId id) override { return table_.Poll(id); }
  absl::Status Wait(TransferId id, absl::Duration timeout) override {
    return table_.Wait(id, timeout);
  }
  absl::StatusOr<TransferStats> Stats(TransferId id) const override { return table_.Stats(id); }

  std::vector<Notification> TakeNotifications() override { return inbox_.TakeAll(); }
  absl::Status WaitForNotification(const std::string& message, absl::Duration timeout) override {
    return inbox_.WaitFor(message, timeout);
  }

  TransportCounters counters() const override {
    TransportCounters c;
    table_.FillCounters(c);
    c.notifications_received = inbox_.received();
    c.transports = absl::StrCat("memcpy (inline up to ", CopyEngine::kInlineBytes / 1024,
                                " KiB, else x", engine_.threads(), " threads)");
    absl::MutexLock lock(&mu_);
    c.registrations = registrations_;
    c.peers_loaded = peers_loaded_;
    c.senders_lost = listener_ ? listener_->senders_lost() : 0;
    return c;
  }

 private:
  const TransportOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  NotificationInbox inbox_;
  BatchTable table_;
  mutable absl::Mutex mu_;
  const KvCache* pool_ ABSL_GUARDED_BY(mu_) = nullptr;
  PoolDescriptor descriptor_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<NotifyListener> listener_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<PeerId, std::shared_ptr<LocalPeer>> peers_ ABSL_GUARDED_BY(mu_);
  PeerId next_peer_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t registrations_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t peers_loaded_ ABSL_GUARDED_BY(mu_) = 0;
  // Last member: destroyed first, so its threads finish while everything above still exists.
  CopyEngine engine_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> MakeLocalTransport(const TransportOptions& options) {
  return std::make_unique<LocalTransport>(options);
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateLocalPoolMemory(size_t bytes) {
  return CreateSharedMemory(bytes);
}

}  // namespace pdserve::transfer::local
