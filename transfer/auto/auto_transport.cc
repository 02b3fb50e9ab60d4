#include "transfer/auto/auto_transport.h"

#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "transfer/local/local_transport.h"
#include "transfer/notification_inbox.h"
#include "transfer/pool_descriptor.h"
#include "transfer/ucx/ucx_transport.h"

namespace pdserve::transfer::autosel {
namespace {

constexpr char kBackend[] = "auto";
// Host ids are bounded where they are set (--host-id, service/host_address.h); a peer's is
// bounded again here, since it arrives in a descriptor from another process.
constexpr size_t kMaxHostBytes = 255;

enum Engine : int { kLocal = 0, kUcx = 1 };
const char* EngineName(int e) { return e == kLocal ? "local" : "ucx"; }

// A batch's id carries its engine in the low bit, so that Poll / Wait / Stats need no table
// of their own (each engine's ids are its own counter, far below 2^63).
TransferId Encode(int engine, TransferId inner) { return (inner << 1) | engine; }
int EngineOf(TransferId id) { return static_cast<int>(id & 1); }
TransferId InnerOf(TransferId id) { return id >> 1; }

class AutoTransport final : public KvTransport {
 public:
  AutoTransport(const TransportOptions& options, std::unique_ptr<KvTransport> local,
                std::unique_ptr<KvTransport> ucx, std::shared_ptr<NotificationInbox> inbox)
      : options_(options), inbox_(std::move(inbox)), log_(ComponentLogger("transfer")) {
    engines_[kLocal] = std::move(local);
    engines_[kUcx] = std::move(ucx);
  }

  std::string backend() const override { return kBackend; }

  absl::Status RegisterPool(const KvCache& cache) override {
    if (cache.memory().shm_name().empty()) {
      return absl::FailedPreconditionError(
          "the auto KV backend needs its pool in POSIX shared memory (AllocatePoolMemory)");
    }
    for (auto& engine : engines_) {
      if (absl::Status s = engine->RegisterPool(cache); !s.ok()) return s;
    }
    std::lock_guard lock(mu_);
    geometry_ = &cache.geometry();
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ExportDescriptor() const override {
    const KvGeometry* geometry;
    {
      std::lock_guard lock(mu_);
      geometry = geometry_;
    }
    if (geometry == nullptr) return absl::FailedPreconditionError("no KV pool registered");
    PoolDescriptor d = DescribePool(kBackend, options_.agent_name, *geometry);
    d.fields["host"] = options_.host_id;
    for (int e : {kLocal, kUcx}) {
      absl::StatusOr<std::string> inner = engines_[e]->ExportDescriptor();
      if (!inner.ok()) return inner.status();
      d.fields[EngineName(e)] = *inner;
    }
    return d.Serialize();
  }

  absl::StatusOr<PeerId> LoadPeer(const std::string& descriptor) override {
    const KvGeometry* geometry;
    {
      std::lock_guard lock(mu_);
      geometry = geometry_;
    }
    if (geometry == nullptr) return absl::FailedPreconditionError("no KV pool registered");
    absl::StatusOr<PoolDescriptor> peer = PoolDescriptor::Parse(descriptor);
    if (!peer.ok()) return peer.status();
    if (absl::Status s = CheckCompatible(*geometry, kBackend, *peer); !s.ok()) return s;
    absl::StatusOr<std::string> host = peer->Field("host");
    if (!host.ok()) return host.status();
    if (host->size() > kMaxHostBytes) {
      return absl::InvalidArgumentError("KV pool descriptor: host id too long");
    }
    const std::string agent = absl::CEscape(peer->agent);
    // One LoadPeer at a time (they are rare): the ucx engine's counters before and after tell
    // whether it already counted this peer as on this host (below).
    std::lock_guard load_lock(load_mu_);
    bool unmappable = false;
    int engine = kUcx;
    absl::StatusOr<PeerId> inner = absl::UnknownError("not loaded");
    if (!options_.host_id.empty() && *host == options_.host_id) {
      absl::StatusOr<std::string> local = peer->Field(EngineName(kLocal));
      if (!local.ok()) return local.status();
      inner = engines_[kLocal]->LoadPeer(*local);
      if (inner.ok()) {
        engine = kLocal;
      } else if (inner.status().code() == absl::StatusCode::kInvalidArgument) {
        return inner.status();  // a malformed descriptor is not a reason to try the network
      } else {
        // Same host by name, but its shared memory is not ours to map (another mount namespace
        // or container): the network still reaches it, at network speed. Say so, and count it.
        log_->warn("agent {}: KV peer '{}' says it is on this host ('{}') but its pool cannot be "
                   "mapped here ({}): using ucx for it",
                   options_.agent_name, agent, absl::CEscape(*host),
                   absl::CEscape(inner.status().message()));
        unmappable = true;
      }
    }
    if (engine == kUcx) {
      absl::StatusOr<std::string> ucx = peer->Field(EngineName(kUcx));
      if (!ucx.ok()) return ucx.status();
      const uint64_t flagged = engines_[kUcx]->counters().same_host_network_peers;
      inner = engines_[kUcx]->LoadPeer(*ucx);
      if (!inner.ok()) return inner.status();
      // Counted once: the ucx engine counts a peer it finds on this host over a network lane.
      if (engines_[kUcx]->counters().same_host_network_peers != flagged) unmappable = false;
    }
    std::lock_guard lock(mu_);
    if (unmappable) ++unmappable_same_host_;
    const PeerId id = next_peer_++;
    peers_[id] = {engine, *inner};
    ++loaded_[engine];
    log_->info("agent {}: KV peer '{}' on host '{}' goes over {}", options_.agent_name, agent,
               absl::CEscape(*host), EngineName(engine));
    return id;
  }

  absl::Status RemovePeer(PeerId peer) override {
    PeerRef ref;
    {
      std::lock_guard lock(mu_);
      auto it = peers_.find(peer);
      if (it == peers_.end()) return absl::FailedPreconditionError("unknown KV peer");
      ref = it->second;
      peers_.erase(it);
    }
    return engines_[ref.engine]->RemovePeer(ref.inner);
  }

  absl::StatusOr<TransferId> Submit(PeerId peer, std::span<const BlockCopy> copies,
                                    const std::string& notification) override {
    absl::StatusOr<PeerRef> ref = Find(peer);
    if (!ref.ok()) return ref.status();
    absl::StatusOr<TransferId> id = engines_[ref->engine]->Submit(ref->inner, copies, notification);
    if (!id.ok()) return id.status();
    return Encode(ref->engine, *id);
  }

  absl::StatusOr<bool> Poll(TransferId id) override {
    return engines_[EngineOf(id)]->Poll(InnerOf(id));
  }
  absl::Status Wait(TransferId id, absl::Duration timeout) override {
    return engines_[EngineOf(id)]->Wait(InnerOf(id), timeout);
  }
  absl::StatusOr<TransferStats> Stats(TransferId id) const override {
    return engines_[EngineOf(id)]->Stats(InnerOf(id));
  }

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
    const TransportCounters l = engines_[kLocal]->counters();
    const TransportCounters u = engines_[kUcx]->counters();
    TransportCounters c;
    c.registrations = l.registrations + u.registrations;
    c.peers_loaded = l.peers_loaded + u.peers_loaded;
    c.batches_submitted = l.batches_submitted + u.batches_submitted;
    c.batches_completed = l.batches_completed + u.batches_completed;
    c.batches_failed = l.batches_failed + u.batches_failed;
    c.bytes_sent = l.bytes_sent + u.bytes_sent;
    c.operations_issued = l.operations_issued + u.operations_issued;
    // One inbox: each engine reports its whole count, and its drops inside senders_refused.
    c.notifications_received = inbox_->received();
    c.senders_lost = l.senders_lost + u.senders_lost;
    c.senders_refused = l.senders_refused + u.senders_refused - inbox_->dropped();
    std::lock_guard lock(mu_);
    c.same_host_network_peers = u.same_host_network_peers + unmappable_same_host_;
    c.transports = absl::StrCat("local for ", loaded_[kLocal], " peer(s) on this host: ",
                                l.transports, "; ucx for ", loaded_[kUcx], " peer(s): ",
                                u.transports.empty() ? "(none yet)" : u.transports);
    return c;
  }

  std::string PeerTransports(PeerId peer) const override {
    absl::StatusOr<PeerRef> ref = Find(peer);
    return ref.ok() ? engines_[ref->engine]->PeerTransports(ref->inner) : "";
  }

  std::string PeerBackend(PeerId peer) const override {
    absl::StatusOr<PeerRef> ref = Find(peer);
    return ref.ok() ? absl::StrCat(kBackend, "/", EngineName(ref->engine)) : kBackend;
  }

 private:
  struct PeerRef {
    int engine = kUcx;
    PeerId inner = 0;
  };

  absl::StatusOr<PeerRef> Find(PeerId peer) const {
    std::lock_guard lock(mu_);
    auto it = peers_.find(peer);
    if (it == peers_.end()) {
      return absl::FailedPreconditionError(absl::StrCat("unknown KV peer ", peer));
    }
    return it->second;
  }

  const TransportOptions options_;
  const std::shared_ptr<NotificationInbox> inbox_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<KvTransport> engines_[2];
  std::mutex load_mu_;
  mutable std::mutex mu_;
  const KvGeometry* geometry_ = nullptr;
  absl::flat_hash_map<PeerId, PeerRef> peers_;
  PeerId next_peer_ = 1;
  uint64_t loaded_[2] = {0, 0};
  uint64_t unmappable_same_host_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> MakeAutoTransport(const TransportOptions& options) {
  TransportOptions inner = options;
  inner.inbox = options.inbox ? options.inbox : std::make_shared<NotificationInbox>();
  inner.backend = "local";
  absl::StatusOr<std::unique_ptr<KvTransport>> local = local::MakeLocalTransport(inner);
  if (!local.ok()) return local.status();
  inner.backend = "ucx";
  absl::StatusOr<std::unique_ptr<KvTransport>> ucx = ucx::MakeUcxTransport(inner);
  if (!ucx.ok()) return ucx.status();
  return std::unique_ptr<KvTransport>(
      new AutoTransport(options, std::move(*local), std::move(*ucx), inner.inbox));
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateAutoPoolMemory(size_t bytes) {
  return local::AllocateLocalPoolMemory(bytes);
}

}  // namespace pdserve::transfer::autosel
