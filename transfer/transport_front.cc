#include "transfer/transport_front.h"

#include <sched.h>

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace pdserve::transfer {
namespace {

struct FrontPeer {
  std::shared_ptr<EnginePeer> engine;
  KvGeometry geometry;
  std::string agent;
};

class TransportFront final : public KvTransport {
 public:
  TransportFront(const TransportOptions& options, std::string backend)
      : options_(options),
        backend_(std::move(backend)),
        inbox_(options.inbox ? options.inbox : std::make_shared<NotificationInbox>()),
        table_(std::max(1, options.max_inflight_batches)) {}

  ~TransportFront() override {
    // The engine first: its threads complete batches in the table and push to the inbox.
    engine_.reset();
  }

  absl::Status Start(const EngineFactory& make) {
    absl::StatusOr<std::unique_ptr<TransferEngine>> engine =
        make(EngineContext{options_, table_, *inbox_});
    if (!engine.ok()) return engine.status();
    engine_ = std::move(*engine);
    return absl::OkStatus();
  }

  std::string backend() const override { return backend_; }

  absl::Status RegisterPool(const KvCache& cache) override {
    std::lock_guard lock(register_mu_);  // held across the engine's registration: once
    {
      std::lock_guard peers(mu_);
      if (pool_ != nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat("agent '", options_.agent_name, "' already registered a KV pool"));
      }
    }
    PoolDescriptor descriptor = DescribePool(backend_, options_.agent_name, cache.geometry());
    if (absl::Status s = engine_->Register(cache, descriptor); !s.ok()) return s;
    std::lock_guard peers(mu_);
    descriptor_ = descriptor.Serialize();
    pool_ = &cache;
    ++registrations_;
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ExportDescriptor() const override {
    std::lock_guard lock(mu_);
    if (pool_ == nullptr) return absl::FailedPreconditionError("no KV pool registered");
    return descriptor_;
  }

  absl::StatusOr<PeerId> LoadPeer(const std::string& bytes) override {
    absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(bytes);
    if (!d.ok()) return d.status();
    const KvCache* pool = Pool();
    if (pool == nullptr) return absl::FailedPreconditionError("register a KV pool before LoadPeer");
    if (absl::Status s = CheckCompatible(pool->geometry(), backend_, *d); !s.ok()) return s;
    const KvGeometry geometry(pool->config(), d->num_blocks, d->layout);
    absl::StatusOr<std::shared_ptr<EnginePeer>> engine_peer = engine_->Connect(*d, geometry);
    if (!engine_peer.ok()) return engine_peer.status();
    auto peer = std::make_shared<const FrontPeer>(
        FrontPeer{std::move(*engine_peer), geometry, d->agent});
    std::lock_guard lock(mu_);
    const PeerId id = next_peer_++;
    peers_.emplace(id, std::move(peer));
    ++peers_loaded_;
    return id;
  }

  absl::Status RemovePeer(PeerId id) override {
    std::shared_ptr<const FrontPeer> peer;
    {
      std::lock_guard lock(mu_);
      auto it = peers_.find(id);
      if (it == peers_.end()) {
        return absl::FailedPreconditionError(absl::StrCat("unknown KV peer ", id));
      }
      peer = std::move(it->second);
      peers_.erase(it);
    }
    engine_->Disconnect(*peer->engine);
    return absl::OkStatus();
  }

  absl::StatusOr<TransferId> Submit(PeerId id, std::span<const BlockCopy> copies,
                                    const std::string& notification) override {
    const KvCache* pool;
    absl::StatusOr<std::shared_ptr<const FrontPeer>> peer = Find(id, &pool);
    if (!peer.ok()) return peer.status();
    if (notification.size() > kMaxNotificationBytes) {
      return absl::InvalidArgumentError(absl::StrCat("KV transfer notification of ",
                                                     notification.size(), " bytes (at most ",
                                                     kMaxNotificationBytes, ")"));
    }
    // Reused per thread: planning a batch allocates nothing once warm (an engine that keeps
    // the runs past Post copies them).
    thread_local std::vector<CopyOp> ops;
    if (absl::Status s = PlanCopies(pool->geometry(), (*peer)->geometry, copies, ops); !s.ok()) {
      return s;
    }
    return engine_->Post((*peer)->engine, PlannedBatch{.copies = copies,
                                                       .ops = ops,
                                                       .bytes = TotalBytes(ops),
                                                       .notification = notification});
  }

  absl::StatusOr<bool> Poll(TransferId id) override { return table_.Poll(id); }

  absl::Status Wait(TransferId id, absl::Duration timeout) override {
    const int64_t spin = absl::ToInt64Nanoseconds(std::min(engine_->wait_spin(), timeout));
    if (spin > 0) {
      const int64_t until = MonotonicNanos() + spin;
      do {
        absl::StatusOr<bool> done = table_.Poll(id);
        if (!done.ok()) return done.status();
        if (*done) return absl::OkStatus();  // Poll reaped it; a failure came back as its status
        sched_yield();
      } while (MonotonicNanos() < until);
    }
    return table_.Wait(id, timeout);
  }

  absl::StatusOr<TransferStats> Stats(TransferId id) const override { return table_.Stats(id); }

  std::vector<Notification> TakeNotifications() override { return inbox_->TakeAll(); }
  absl::Status WaitForNotification(const std::string& message, absl::Duration timeout) override {
    return inbox_->WaitFor(message, timeout);
  }
  absl::Status WatchNotification(const std::string& message,
                                 std::function<void()> arrived) override {
    return inbox_->Watch(message, std::move(arrived));
  }
  bool UnwatchNotification(const std::string& message) override {
    return inbox_->Unwatch(message);
  }

  TransportCounters counters() const override {
    TransportCounters c;
    table_.FillCounters(c);
    c.notifications_received = inbox_->received();
    c.senders_refused = inbox_->dropped();
    {
      std::lock_guard lock(mu_);
      c.registrations = registrations_;
      c.peers_loaded = peers_loaded_;
    }
    engine_->AddCounters(c);
    return c;
  }

  absl::StatusOr<std::unique_ptr<KvWriteWindow>> OpenWindow(
      PeerId id, std::span<const BlockId> blocks) override {
    if (!capabilities().in_place_windows) return KvTransport::OpenWindow(id, blocks);
    absl::StatusOr<std::shared_ptr<const FrontPeer>> peer = Find(id, nullptr);
    if (!peer.ok()) return peer.status();
    return engine_->OpenWindow((*peer)->engine, blocks);
  }

  std::string PeerTransports(PeerId id) const override {
    absl::StatusOr<std::shared_ptr<const FrontPeer>> peer = Find(id, nullptr);
    return peer.ok() ? engine_->Transports(*(*peer)->engine) : "";
  }

 private:
  const KvCache* Pool() const {
    std::lock_guard lock(mu_);
    return pool_;
  }

  // The peer `id` (FailedPrecondition when unknown or removed) and the registered pool.
  absl::StatusOr<std::shared_ptr<const FrontPeer>> Find(PeerId id, const KvCache** pool) const {
    std::lock_guard lock(mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) {
      return absl::FailedPreconditionError(absl::StrCat("unknown or removed KV peer ", id));
    }
    if (pool != nullptr) *pool = pool_;
    return it->second;
  }

  const TransportOptions options_;
  const std::string backend_;
  const std::shared_ptr<NotificationInbox> inbox_;
  BatchTable table_;
  std::mutex register_mu_;
  // std::mutex: Submit takes it once per batch to find the peer, and Debian's Abseil (built
  // without NDEBUG) adds held-lock bookkeeping to every absl::Mutex operation.
  mutable std::mutex mu_;
  const KvCache* pool_ = nullptr;
  std::string descriptor_;
  absl::flat_hash_map<PeerId, std::shared_ptr<const FrontPeer>> peers_;
  PeerId next_peer_ = 1;
  uint64_t registrations_ = 0;
  uint64_t peers_loaded_ = 0;
  std::unique_ptr<TransferEngine> engine_;  // reset first by the destructor
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> MakeFrontTransport(const TransportOptions& options,
                                                                const std::string& backend,
                                                                const EngineFactory& make) {
  auto front = std::make_unique<TransportFront>(options, backend);
  if (absl::Status s = front->Start(make); !s.ok()) return s;
  return front;
}

}  // namespace pdserve::transfer
