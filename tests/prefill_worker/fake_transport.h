#pragma once

// An in-process stand-in for transfer/ in unit tests of the prefill engine: copies blocks between
// two KvCaches of this process with memcpy, synchronously, and records notifications. The real
// backends are exercised by tests/e2e.

#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "transfer/kv_transport.h"

namespace pdserve::prefill {

class FakeTransport : public transfer::KvTransport {
 public:
  // Pools by descriptor string, shared by every FakeTransport of the test.
  static std::map<std::string, const KvCache*>& Registry() {
    static std::map<std::string, const KvCache*> registry;
    return registry;
  }

  std::string backend() const override { return "fake"; }
  absl::Status RegisterPool(const KvCache& cache) override {
    cache_ = &cache;
    name_ = absl::StrCat("pool-", reinterpret_cast<uintptr_t>(&cache));
    Registry()[name_] = &cache;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExportDescriptor() const override { return name_; }
  absl::StatusOr<transfer::PeerId> LoadPeer(const std::string& descriptor) override {
    auto it = Registry().find(descriptor);
    if (it == Registry().end()) return absl::InvalidArgumentError("unknown pool");
    peers_[next_peer_] = it->second;
    return next_peer_++;
  }
  absl::Status RemovePeer(transfer::PeerId peer) override {
    peers_.erase(peer);
    return absl::OkStatus();
  }
  absl::StatusOr<transfer::TransferId> Submit(transfer::PeerId peer,
                                              std::span<const transfer::BlockCopy> copies,
                                              const std::string& notification) override {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return absl::FailedPreconditionError("unknown peer");
    const KvCache& dst = *it->second;
    const KvGeometry& g = cache_->geometry();
    for (const transfer::BlockCopy& c : copies) {
      for (int f = 0; f < g.fragments_per_block(); ++f) {
        std::memcpy(dst.base() + dst.geometry().FragmentOffset(c.dst, f),
                    cache_->base() + g.FragmentOffset(c.src, f),
                    static_cast<size_t>(g.transfer_fragment_bytes()));
      }
    }
    sent_notifications.push_back(notification);
    if (on_submit) on_submit(notification);
    stats_[next_transfer_] = {.bytes = copies.size() * static_cast<uint64_t>(g.block_bytes()),
                              .operations = static_cast<uint32_t>(copies.size())};
    return next_transfer_++;
  }
  absl::StatusOr<bool> Poll(transfer::TransferId) override { return !stall_transfers; }
  absl::Status Wait(transfer::TransferId, absl::Duration timeout) override {
    waits.push_back(timeout);
    if (stall_transfers) return absl::DeadlineExceededError("transfer still in flight");
    return absl::OkStatus();
  }
  absl::StatusOr<transfer::TransferStats> Stats(transfer::TransferId id) const override {
    return stats_.at(id);
  }
  std::vector<transfer::Notification> TakeNotifications() override { return {}; }
  absl::Status WaitForNotification(const std::string&, absl::Duration) override {
    return absl::OkStatus();
  }
  transfer::TransportCounters counters() const override { return {}; }

  std::vector<std::string> sent_notifications;
  // Called on the submitting thread after each batch's bytes were copied (its notification).
  std::function<void(const std::string&)> on_submit;
  // Every Wait's timeout; with stall_transfers, each Wait answers that its transfer is still in
  // flight (a stalled peer), without sleeping.
  std::vector<absl::Duration> waits;
  bool stall_transfers = false;

 private:
  const KvCache* cache_ = nullptr;
  std::string name_;
  std::map<transfer::PeerId, const KvCache*> peers_;
  std::map<transfer::TransferId, transfer::TransferStats> stats_;
  transfer::PeerId next_peer_ = 1;
  transfer::TransferId next_transfer_ = 1;
};

}  // namespace pdserve::prefill
