#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace pdserve::transfer::local {

// One sender connection's notifications, in shared memory: a single-producer / single-consumer
// ring of fixed-size slots (what UCX's posix FIFOs and NCCL's shm transport do), so that the
// common case of a batch's notification costs the sender a few stores and no syscall.
//
// Who creates it: the RECEIVER, when a sender says hello on the notification socket; it passes
// the memory to the sender as a memfd over that socket (SCM_RIGHTS). The memory never has a
// name, so a crash of either side leaves nothing behind. The receiver creates it because the
// ring also carries the receiver's liveness lock (below), which must be held before the sender
// can ever see the ring.
//
// Protocol (all fields below live in the shared header):
//   - data before notification: the sender writes a slot after the batch's bytes are in the
//     pool, then publishes it with a release store of `head`; the receiver's acquire load of
//     `head` makes the bytes visible before it reads the slot.
//   - parking (Dekker): the receiver's listener spins on the rings for a while after activity,
//     then stores parked = 1, fences (seq_cst) and re-checks every ring before poll(). The
//     sender stores the slot, fences (seq_cst), then loads `parked`; when set, it clears it
//     and writes one doorbell byte to the socket. Either the receiver sees the slot or the
//     sender sees the flag, so no notification waits for a wake-up that never comes.
//   - fallback (a message longer than a slot, a full ring): the message goes to the socket as
//     a packet. Order stays per sender because (a) the receiver drains the ring before it
//     delivers a socket packet (every slot published before that packet was sent is visible
//     by then), and (b) once one message took the socket, the sender keeps using the socket
//     until the receiver has delivered all of them (`socket_consumed` == its own
//     `socket_sent`), so no later ring slot can overtake an earlier packet.
//   - receiver liveness without a syscall: a robust, process-shared mutex that the receiver's
//     listener thread holds for the life of the connection. The kernel marks it OWNER_DIED
//     when the receiver dies; pthread_mutex_trylock (a CAS, no syscall while the owner lives)
//     tells the sender. (The kernel walks at most 2048 robust mutexes per thread: one per
//     sender connection, far more than a decode worker has.)
inline constexpr uint32_t kRingSlots = 256;
inline constexpr uint32_t kRingSlotBytes = 256;
// Longest message that fits a slot; longer ones take the socket.
inline constexpr uint32_t kRingPayloadBytes = kRingSlotBytes - sizeof(uint32_t);

class NotifyRing {
 public:
  // Receiver side, on its listener thread: new ring memory, the liveness lock taken by the
  // calling thread. Returns the ring and the memfd to send (the caller closes it).
  static absl::StatusOr<std::unique_ptr<NotifyRing>> Create(int& memfd);
  // Sender side: maps the ring received as `memfd` (not closed here).
  static absl::StatusOr<std::unique_ptr<NotifyRing>> Map(int memfd);
  // Receiver: releases the liveness lock (must run on the thread that created it), unmaps.
  ~NotifyRing();
  NotifyRing(const NotifyRing&) = delete;
  NotifyRing& operator=(const NotifyRing&) = delete;

  // ---- sender (one producer: callers serialise) ----
  enum class Push { kDone, kDoneRingDoorbell, kUseSocket };
  // kUseSocket: the message does not fit, the ring is full, or earlier messages went to the
  // socket and are not delivered yet (order). kDoneRingDoorbell: published, and the receiver
  // was parked: write the doorbell.
  Push TryPush(const std::string& message);
  // After a message went to the socket as a packet.
  void NoteSocketSent();
  // false once the receiver died or released the connection (sticky). No syscall.
  bool ReceiverAlive();

  // ---- receiver (the listener thread) ----
  // Calls `deliver` for every published slot, in order; returns how many.
  int Drain(const std::function<void(std::string)>& deliver);
  // Something to do: a published slot, or a socket packet not delivered yet.
  bool HasWork() const;
  bool SocketPending() const;
  // After a socket packet of this sender was delivered.
  void NoteSocketConsumed();
  // Parking: the caller fences (seq_cst) after setting it on every ring, then re-checks.
  void SetParked(bool parked);

 private:
  struct Header;
  struct Slot;
  NotifyRing(void* memory, size_t bytes, bool receiver);
  Slot* slot(uint64_t index) const;

  void* memory_;
  size_t bytes_;
  Header* header_;
  const bool receiver_;
  // Sender: its own copies of what it published, and the last `tail` it read.
  uint64_t head_ = 0;
  uint64_t socket_sent_ = 0;
  uint64_t tail_seen_ = 0;
  bool alive_ = true;
  // Receiver: slots consumed.
  uint64_t tail_ = 0;
};

}  // namespace pdserve::transfer::local
