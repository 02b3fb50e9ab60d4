#pragma once

// The receiving half of the nccl engine: per sender (by the agent name its authenticated
// channel presented), a communicator joined from the sender's Init, one stream, and the
// receives it posted, in order. A notification is delivered to the transport's inbox only once
// every receive posted before it completed on this side's stream: the bytes are in this pool.
// Anything wrong (a message that does not decode or does not fit this pool, a receive or a
// communicator that did not finish within the timeout, the sender's channel closing, the
// sender's Abort) aborts that sender's communicator, which kills the receives it had posted so
// that none lands later, and drops its pending notifications: their requests time out as for a
// lost transfer. Only the engine's thread calls it.

#include <cuda_runtime.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "kvcache/kv_cache.h"
#include "transfer/notification_inbox.h"
#include "transfer/nccl/nccl_comm.h"
#include "transfer/nccl/nccl_protocol.h"

namespace pdserve::transfer::nccl {

class NcclReceiver {
 public:
  // Most messages a sender may have waiting (Recv before its communicator is up, and receives
  // or notifications not yet completed): past it the sender is cut off.
  static constexpr size_t kMaxPendingPerSender = 8192;

  NcclReceiver(std::string agent, NotificationInbox& deliver, absl::Duration timeout)
      : agent_(std::move(agent)), deliver_(deliver), timeout_(timeout) {}
  ~NcclReceiver();

  void SetPool(const KvCache* pool) { pool_ = pool; }
  void OnMessage(const std::string& sender, const std::string& bytes);
  void OnSenderLost(const std::string& sender);
  // Moves every sender's work on; true while any has receives or notifications pending.
  bool Advance();

  uint64_t senders_cut_off() const { return cut_off_; }

 private:
  struct Pending {
    cudaEvent_t event = nullptr;  // the receives of one Recv message; null: a notification
    std::string notification;
    int64_t since_ns = 0;
  };
  struct Sender {
    uint64_t generation = 0;
    std::optional<KvGeometry> geometry;  // the sender's pool
    std::unique_ptr<Comm> comm;
    bool ready = false;
    int64_t started_ns = 0;
    cudaStream_t stream = nullptr;
    // Arrived before the communicator was up, in order: a Recv, or a notification (then
    // `recv` is empty).
    struct Waiting {
      std::optional<RecvMessage> recv;
      std::string notification;
    };
    std::deque<Waiting> waiting;
    std::deque<Pending> pending;
    ~Sender();
  };

  void Init(const std::string& sender, InitMessage m);
  void Recv(const std::string& sender, Sender& s, const RecvMessage& m);
  // Aborts the sender's communicator and forgets it, logging why (escaped).
  void CutOff(const std::string& sender, const std::string& why);
  // false when the sender was cut off.
  bool AdvanceSender(const std::string& sender, Sender& s);

  const std::string agent_;
  NotificationInbox& deliver_;
  const absl::Duration timeout_;
  const KvCache* pool_ = nullptr;
  absl::flat_hash_map<std::string, std::unique_ptr<Sender>> senders_;
  std::vector<CopyOp> ops_;          // reused per message
  std::vector<std::string> names_;   // reused per Advance
  uint64_t cut_off_ = 0;
};

}  // namespace pdserve::transfer::nccl
