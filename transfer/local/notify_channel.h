#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "transfer/notification_inbox.h"

namespace pdserve::transfer::local {

// The `local` backend's notification channel: a SOCK_SEQPACKET unix socket in the abstract
// namespace (no file to clean up after a crash). Each sender connects once, says hello with its
// agent name, then sends one packet per completed batch. A packet is sent only after the
// batch's memcpy finished, and a stream socket delivers it once and in order, so a
// notification is delivered exactly once and after its data. A sender that dies closes its end:
// the listener counts it in senders_lost.

// Receiving side: owns the listening socket and one thread that accepts and reads.
class NotifyListener {
 public:
  static absl::StatusOr<std::unique_ptr<NotifyListener>> Start(NotificationInbox* inbox,
                                                               const std::string& agent);
  ~NotifyListener();
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  // Abstract socket name (without the leading NUL) for the descriptor.
  const std::string& address() const { return address_; }
  uint64_t senders_lost() const { return senders_lost_.load(); }

 private:
  NotifyListener(NotificationInbox* inbox, std::string agent, std::string address, int listen_fd,
                 int wake_fd);
  void Loop();

  NotificationInbox* inbox_;
  std::string agent_;
  std::string address_;
  int listen_fd_;
  int wake_fd_;  // eventfd: the destructor wakes the loop through it
  std::atomic<uint64_t> senders_lost_{0};
  std::thread thread_;
};

// Sending side: one connection to a peer's listener.
class NotifySender {
 public:
  // FailedPrecondition when nobody listens at `address` (a stale descriptor).
  static absl::StatusOr<std::unique_ptr<NotifySender>> Connect(const std::string& address,
                                                               const std::string& agent);
  ~NotifySender();
  NotifySender(const NotifySender&) = delete;
  NotifySender& operator=(const NotifySender&) = delete;

  // Unavailable when the peer went away (or stopped reading for several seconds).
  absl::Status Send(const std::string& message);
  // True once the peer closed its end (it died or removed its pool).
  bool PeerGone() const;

 private:
  explicit NotifySender(int fd) : fd_(fd) {}
  absl::Mutex mu_;  // one packet at a time from the copy threads
  int fd_;
};

}  // namespace pdserve::transfer::local
