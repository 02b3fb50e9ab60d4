#include "transfer/inproc/inproc_transport.h"

#include <unistd.h>

#include <random>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "transfer/batch_table.h"
#include "transfer/notification_inbox.h"

namespace pdserve::transfer::inproc {
namespace {

constexpr char kPrefix[] = "pdserve-inproc/";

class InprocTransport final : public KvTransport {
 public:
  explicit InprocTransport(const TransportOptions& options)
      : options_(options), batches_(options.max_inflight_batches) {
    std::random_device rd;
    descriptor_ = absl::StrCat(kPrefix, getpid(), "/", (uint64_t{rd()} << 32) | rd());
  }

  std::string backend() const override { return "inproc"; }

  absl::Status RegisterPool(const KvCache& cache) override {
    absl::MutexLock lock(&mu_);
    if (cache_ != nullptr) return absl::FailedPreconditionError("a pool is already registered");
    cache_ = &cache;
    registrations_++;
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ExportDescriptor() const override {
    absl::MutexLock lock(&mu_);
    if (cache_ == nullptr) return absl::FailedPreconditionError("no pool registered");
    return descriptor_;
  }

  absl::StatusOr<PeerId> LoadPeer(const std::string& descriptor) override {
    absl::MutexLock lock(&mu_);
    if (cache_ == nullptr) return absl::FailedPreconditionError("no pool registered");
    if (descriptor.rfind(kPrefix, 0) != 0) {
      return absl::InvalidArgumentError("not an inproc pool descriptor");
    }
    if (descriptor != descriptor_) {
      // Another worker's pool: inproc moves nothing, so it can only serve its own pool.
      return absl::FailedPreconditionError(
          "inproc reaches only its own pool (a colocated worker); prefill and decode in two "
          "processes need a transfer backend that moves bytes (local, ucx)");
    }
    const PeerId id = next_peer_++;
    peers_.insert(id);
    peers_loaded_++;
    return id;
  }

  absl::Status RemovePeer(PeerId peer) override {
    absl::MutexLock lock(&mu_);
    if (peers_.erase(peer) == 0) {
      return absl::FailedPreconditionError(absl::StrCat("unknown KV peer ", peer));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<TransferId> Submit(PeerId peer, std::span<const BlockCopy> copies,
                                    const std::string& notification) override {
    const int64_t submit_ns = MonotonicNanos();
    if (notification.size() > kMaxNotificationBytes) {
      return absl::InvalidArgumentError(absl::StrCat("notification of ", notification.size(),
                                                     " bytes (at most ", kMaxNotificationBytes,
                                                     ")"));
    }
    {
      absl::MutexLock lock(&mu_);
      if (!peers_.contains(peer)) {
        return absl::FailedPreconditionError(absl::StrCat("unknown or removed KV peer ", peer));
      }
      if (copies.empty()) return absl::InvalidArgumentError("empty KV batch");
      const uint32_t blocks = cache_->geometry().num_blocks();
      absl::flat_hash_set<BlockId> seen;
      for (const BlockCopy& c : copies) {
        if (c.src != c.dst) {
          return absl::InvalidArgumentError(absl::StrCat(
              "inproc moves no bytes: block ", c.src, " -> ", c.dst,
              " names two blocks (the prefill side must write the reserved blocks themselves)"));
        }
        if (c.dst >= blocks || !seen.insert(c.dst).second) {
          return absl::InvalidArgumentError(absl::StrCat(
              "block ", c.dst, c.dst >= blocks ? absl::StrCat(" is outside the pool of ", blocks)
                                               : std::string(" is named twice")));
        }
      }
    }
    // The kernels wrote the blocks before this call: they are in place, announce them.
    const TransferId id = batches_.AddFinished(0, 0, submit_ns, absl::OkStatus());
    if (!notification.empty()) {
      (void)inbox_.Push(Notification{.sender = options_.agent_name, .message = notification});
    }
    return id;
  }

  absl::StatusOr<bool> Poll(TransferId id) override { return batches_.Poll(id); }
  absl::Status Wait(TransferId id, absl::Duration timeout) override {
    return batches_.Wait(id, timeout);
  }
  absl::StatusOr<TransferStats> Stats(TransferId id) const override { return batches_.Stats(id); }

  std::vector<Notification> TakeNotifications() override { return inbox_.TakeAll(); }
  absl::Status WaitForNotification(const std::string& message, absl::Duration timeout) override {
    return inbox_.WaitFor(message, timeout);
  }

  TransportCounters counters() const override {
    TransportCounters c;
    batches_.FillCounters(c);
    {
      absl::MutexLock lock(&mu_);
      c.registrations = registrations_;
      c.peers_loaded = peers_loaded_;
    }
    c.notifications_received = inbox_.received();
    c.senders_refused = inbox_.dropped();
    c.transports = "none (one shared pool)";
    return c;
  }

 private:
  const TransportOptions options_;
  std::string descriptor_;
  mutable absl::Mutex mu_;
  const KvCache* cache_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::flat_hash_set<PeerId> peers_ ABSL_GUARDED_BY(mu_);
  PeerId next_peer_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t registrations_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t peers_loaded_ ABSL_GUARDED_BY(mu_) = 0;
  BatchTable batches_;
  NotificationInbox inbox_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> MakeInprocTransport(const TransportOptions& options) {
  return std::make_unique<InprocTransport>(options);
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateInprocPoolMemory(size_t bytes) {
  return AllocateHostMemory(bytes);
}

}  // namespace pdserve::transfer::inproc
