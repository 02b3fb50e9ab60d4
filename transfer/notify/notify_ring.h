#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace pdserve::transfer::notify {

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
//     a packet. Order and exactly-once stay per sender through a sequence number that every
//     message carries, slot or packet (the sender numbers them under its lock, counting only
//     messages that were published or sent): the receiver delivers strictly in that order,
//     merging the ring and the packets it read (both are FIFO). A slot whose number is ahead
//     waits for the packet before it, which is already in the socket: the sender's send()
//     returned and it bumped `socket_sent` (which the receiver sees, through `head`'s
//     release / acquire, as `socket_sent` != `socket_received`) before it published the slot.
//     The sender takes the ring again as soon as there is room, so a receiver that fell
//     behind once does not keep it on the socket.
//   - receiver liveness without a syscall: a robust, process-shared mutex that the receiver's
//     listener thread holds for the life of the connection. The kernel marks it OWNER_DIED
//     when the receiver dies; pthread_mutex_trylock (a CAS, no syscall while the owner lives)
//     tells the sender. (The kernel walks at most 2048 robust mutexes per thread: one per
//     sender connection, far more than a decode worker has.)
// 1024 slots absorb a receiver stalled (descheduled) for about a millisecond of back-to-back
// small batches before messages spill to the socket; 120 bytes hold any request id. 128 KiB.
inline constexpr uint32_t kRingSlots = 1024;
inline constexpr uint32_t kRingSlotBytes = 128;
// Longest message that fits a slot (after its length and sequence number); longer ones take
// the socket.
inline constexpr uint32_t kRingPayloadBytes = kRingSlotBytes - 2 * sizeof(uint32_t);

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
  // Publishes message number `seq`. kUseSocket: it does not fit or the ring is full (nothing
  // written). kDoneRingDoorbell: published, and the receiver was parked: ring the doorbell.
  Push TryPush(const std::string& message, uint32_t seq);
  // After a message went to the socket as a packet (before any later TryPush).
  void NoteSocketSent();
  // false once the receiver died or released the connection (sticky). No syscall.
  bool ReceiverAlive();

  // ---- receiver (the listener thread) ----
  // The oldest published slot not consumed yet: false when there is none. `message` points
  // into the slot: valid until Pop.
  bool Front(uint32_t& seq, std::string_view& message);
  void Pop();
  // Something to do: a published slot, or a packet the sender sent that was not read yet.
  bool HasWork() const;
  bool SocketPending() const;
  // After a packet of this sender was read from the socket.
  void NoteSocketReceived();
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
  // Receiver: slots consumed, and the last `head` it read.
  uint64_t tail_ = 0;
  uint64_t head_seen_ = 0;
};

}  // namespace pdserve::transfer::notify
