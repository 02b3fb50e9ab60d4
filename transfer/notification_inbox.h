#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {

// Notifications that arrived and nobody consumed yet. The backend's receive path pushes (only
// after the batch's bytes are in the pool); callers take or wait. Each is consumed once.
// Bounded: a sender that sends notifications nobody waits for cannot grow the receiver without
// limit; past the bound new ones are dropped (and logged, escaped): their requests then time
// out waiting, as for a lost transfer.
class NotificationInbox {
 public:
  static constexpr size_t kMaxPending = 65536;
  static constexpr size_t kMaxPendingBytes = 64 << 20;  // message + sender bytes

  // False (and the notification dropped) when the inbox is full.
  bool Push(Notification n);
  std::vector<Notification> TakeAll();
  // Consumes the first notification carrying `message`; DeadlineExceeded after `timeout`.
  absl::Status WaitFor(const std::string& message, absl::Duration timeout);
  // KvTransport::WatchNotification: `arrived` runs once, consuming the notification, on the
  // pushing thread (outside the lock) or, when one is pending already, on this one before
  // Watch returns. AlreadyExists when `message` is watched already.
  absl::Status Watch(const std::string& message, std::function<void()> arrived);
  // True when the watch was still there (it is gone now and never runs).
  bool Unwatch(const std::string& message);
  uint64_t received() const;
  uint64_t dropped() const;

  // For an engine that reads its own control messages from a private inbox (nccl): `pushed`
  // runs after every accepted Push, `sender_lost` when the receive path saw a sender's
  // connection close (SenderLost). Both run on the receive path's thread and must not block.
  // Set them before the receive path starts.
  void SetObserver(std::function<void()> pushed,
                   std::function<void(const std::string& sender)> sender_lost);
  void SenderLost(const std::string& sender) const;

 private:
  std::function<void()> pushed_;
  std::function<void(const std::string&)> sender_lost_;
  mutable absl::Mutex mu_;
  std::deque<Notification> pending_ ABSL_GUARDED_BY(mu_);
  // Bounded like pending_: a watch is the receiver's own (a waiting Decode call), never a
  // sender's.
  std::map<std::string, std::function<void()>> watches_ ABSL_GUARDED_BY(mu_);
  uint64_t received_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pdserve::transfer
