#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "transfer/notify/notify_ring.h"
#include "transfer/notification_inbox.h"

namespace pdserve::transfer::notify {

// The same-host notification channel of the local, cuda-ipc and nccl backends (nccl sends its
// control messages over it too). Per sender connection:
//   - a SOCK_SEQPACKET unix socket in the abstract namespace (no file to clean up after a
//     crash): the hello (sender's agent name; the receiver answers with the ring below), the
//     peer-death signal (a sender that dies closes its end: the listener counts it in
//     senders_lost; a receiver that dies fails the doorbell / fallback send, and is seen
//     without a syscall through the ring's liveness lock), the
//     doorbell that wakes a parked receiver, and the fallback path for messages that do not
//     fit the ring;
//   - a notification ring in shared memory (notify_ring.h): the common path, no syscall for
//     the sender while the receiver is awake.
// A notification is written only after the batch's memcpy finished, and ring and socket
// together deliver each once and in order per sender (see NotifyRing), so a notification is
// delivered exactly once and after its data.

// Receiving side: owns the listening socket and one thread that accepts, reads the sockets and
// drains the rings. After activity it keeps polling the rings (no syscall; a pause and a yield
// every few turns, so a 2-core host keeps a core for the others) for kSpinNanos, looking at the
// sockets every kSocketCheckNanos meanwhile, then parks in poll() until a doorbell or a packet.
// kSpinNanos is about what parking costs (the sender's doorbell send plus the wake-up, a few
// microseconds here): spinning that long at most is within 2x of the best choice whatever the
// gap to the next message, and a decode worker between large batches gets its core back
// (50 us measured the same on every row of `bench transfer`, and spent a core's fifth on
// batches 100 us apart).
class NotifyListener {
 public:
  static constexpr int64_t kSpinNanos = 10'000;
  static constexpr int64_t kSocketCheckNanos = 200'000;

  // Accepts senders of this user that present `credential` in their hello (empty: any of this
  // user), at most kMaxSenders at once, and closes a sender that makes it buffer more than
  // kMaxPendingPackets / kMaxPendingBytes (notify_peer.h), logging why.
  static absl::StatusOr<std::unique_ptr<NotifyListener>> Start(NotificationInbox* inbox,
                                                               const std::string& agent,
                                                               const std::string& credential);
  ~NotifyListener();
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  // Abstract socket name (without the leading NUL) for the descriptor.
  const std::string& address() const { return address_; }
  uint64_t senders_lost() const { return senders_lost_.load(); }
  // Connections closed because of who they were or what they sent (another user, no or a
  // wrong credential, a malformed hello, too much buffered, too many senders).
  uint64_t senders_refused() const { return senders_refused_.load(); }

 private:
  NotifyListener(NotificationInbox* inbox, std::string agent, std::string credential,
                 std::string address, int listen_fd, int wake_fd);
  void Loop();

  NotificationInbox* inbox_;
  std::string agent_;
  std::string credential_;
  std::string address_;
  int listen_fd_;
  int wake_fd_;  // eventfd: the destructor wakes the loop through it
  std::atomic<uint64_t> senders_lost_{0};
  std::atomic<uint64_t> senders_refused_{0};
  std::thread thread_;
};

// Sending side: one connection to a peer's listener.
class NotifySender {
 public:
  // FailedPrecondition when nobody listens at `address` (a stale descriptor), when the
  // listener is another user's process, or when it refused `credential`.
  static absl::StatusOr<std::unique_ptr<NotifySender>> Connect(const std::string& address,
                                                               const std::string& agent,
                                                               const std::string& credential);
  ~NotifySender();
  NotifySender(const NotifySender&) = delete;
  NotifySender& operator=(const NotifySender&) = delete;

  // Unavailable when the peer went away (or, for a message that took the socket, stopped
  // reading for several seconds). No syscall while the message fits the ring and the
  // receiver is awake.
  absl::Status Send(const std::string& message);
  // True once the peer died or released its pool (sticky). No syscall.
  bool PeerGone();

 private:
  NotifySender(int fd, std::unique_ptr<NotifyRing> ring) : fd_(fd), ring_(std::move(ring)) {}
  absl::Status SendNotifyPacket(const std::string& message, uint32_t seq);  // holding mu_

  // The ring has one producer: the copy threads take turns. A std::mutex, not absl::Mutex: it
  // is taken once per batch, and Debian's Abseil (built without NDEBUG) adds bookkeeping to
  // every absl::Mutex operation.
  std::mutex mu_;
  int fd_;
  std::unique_ptr<NotifyRing> ring_;
  uint32_t next_seq_ = 0;  // number of the next message, ring or socket
};

}  // namespace pdserve::transfer::notify
