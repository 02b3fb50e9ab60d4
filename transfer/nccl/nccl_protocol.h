#pragma once

// The nccl backend's control messages (no NCCL or CUDA types: the codec and its bounds are
// tested on any host). NCCL is two-sided: bytes move only when the receiver has posted an
// ncclRecv of the same size, in the same order, for each ncclSend. The sender therefore tells
// the receiver what to receive, over the channel the cuda-ipc backend uses for notifications
// (notify::NotifySender: a unix socket, the sender authenticated by the cluster secret, messages
// delivered once and in order), ahead of the sends:
//
//   Init    first message of a communicator: the NCCL unique id the sender made, the
//           communicator's generation (a sender that rebuilds after a failure counts up) and the
//           sender pool's shape, which the receiver checks against its own before it joins.
//   Recv    one chunk of a batch: up to kMaxCopiesPerRecv block pairs (sender block, receiver
//           block). Both sides plan the chunk's runs with PlanCopies(sender pool, receiver pool)
//           and so post equal-sized ncclSend / ncclRecv in the same order. The receiver plans
//           in its own process from the pairs, never from offsets the sender computed: a block
//           outside its pool or named twice aborts the communicator before anything is posted.
//   Notify  the batch's notification: the receiver delivers it once every Recv before it has
//           completed on its own stream (kv_transport.h, Ordering).
//   Abort   the sender gave up on the communicator (a peer removed, a timeout, an NCCL error):
//           the receiver aborts its side too, so that no receive it posted can land later.
//
// Every message fits one notification-channel packet (at most kMaxControlBytes).

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "kvcache/kv_layout.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::nccl {

inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr size_t kUniqueIdBytes = 128;  // sizeof(ncclUniqueId)
// Block pairs per Recv message: 8 bytes each, so a message stays within one packet.
inline constexpr size_t kMaxCopiesPerRecv = 480;
inline constexpr size_t kMaxControlBytes = kMaxNotificationBytes + 64;

struct InitMessage {
  uint64_t generation = 0;
  std::string unique_id;  // kUniqueIdBytes
  // The sender pool's shape.
  KvLayout layout = KvLayout::kLayerMajor;
  uint32_t num_blocks = 0;
  uint32_t num_layers = 0;
  uint64_t fragment_bytes = 0;
};

struct RecvMessage {
  uint64_t generation = 0;
  uint64_t batch = 0;  // the sender's batch id, for log lines
  std::vector<BlockCopy> copies;
};

struct NotifyMessage {
  uint64_t generation = 0;
  std::string message;  // at most kMaxNotificationBytes
};

struct AbortMessage {
  uint64_t generation = 0;
};

using ControlMessage = std::variant<InitMessage, RecvMessage, NotifyMessage, AbortMessage>;

std::string Encode(const ControlMessage& message);
// InvalidArgument for anything that is not a well-formed message of this version (the bytes come
// from another process): wrong kind or version, truncated or trailing bytes, a unique id of the
// wrong size, no copies or more than kMaxCopiesPerRecv, a notification over the bound.
absl::StatusOr<ControlMessage> Decode(std::string_view bytes);

// The batch's block pairs cut into Recv-sized chunks, in order.
std::vector<std::span<const BlockCopy>> ChunkCopies(std::span<const BlockCopy> copies);

// The receiver's check of an Init against its own pool: InvalidArgument unless the sender's
// pool has its layout, layer count and fragment size (block counts may differ) and at least one
// block. The geometry to plan the sender's side with.
absl::StatusOr<KvGeometry> SenderGeometry(const InitMessage& init, const KvGeometry& own);

}  // namespace pdserve::transfer::nccl
