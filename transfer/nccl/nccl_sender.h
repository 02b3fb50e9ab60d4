#pragma once

// The sending half of the nccl engine: per receiving peer, its channel (control messages and
// notifications), a communicator made at the first batch (this side rank 0), one stream, the
// batches waiting for the communicator and those in flight, in submit order. Post (any thread)
// reads a peer's `failed` under its `mu`; everything else is the engine thread's.

#include <cuda_runtime.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "transfer/batch_table.h"
#include "transfer/notify/notify_channel.h"
#include "transfer/nccl/nccl_comm.h"
#include "transfer/peer_order.h"
#include "transfer/pool_descriptor.h"
#include "transfer/transfer_engine.h"

namespace pdserve::transfer::nccl {

struct Job {
  TransferId tid = 0;
  std::vector<BlockCopy> copies;
  std::string notification;
};

struct InFlight {
  TransferId tid = 0;
  cudaEvent_t event = nullptr;
  std::string notification;
  int64_t deadline_ns = 0;
};

// One receiving peer.
struct NcclPeer final : EnginePeer {
  std::string agent;
  KvGeometry geometry;  // the peer's pool
  std::unique_ptr<notify::NotifySender> channel;
  PeerOrder order;
  std::mutex mu;
  absl::Status failed;  // sticky: a failure that loses bytes is permanent for the peer

  uint64_t generation = RandomId();
  std::unique_ptr<Comm> comm;
  bool ready = false;
  int64_t init_deadline_ns = 0;
  cudaStream_t stream = nullptr;
  std::deque<Job> queued;  // waiting for the communicator
  std::deque<InFlight> in_flight;

  NcclPeer(std::string a, const KvGeometry& g) : agent(std::move(a)), geometry(g) {}
  ~NcclPeer() override {
    comm.reset();
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
  absl::Status Failed() {
    std::lock_guard lock(mu);
    return failed;
  }
};

class NcclSender {
 public:
  NcclSender(const TransportOptions& options, BatchTable& table)
      : options_(options), table_(table) {}
  void SetPool(const KvCache* pool) { pool_ = pool; }
  // Moves the peer's batches on (its communicator first); true while it has any queued or in
  // flight.
  bool Advance(const std::shared_ptr<NcclPeer>& peer);
  // Aborts the peer's communicator and ends its batches with `why`; tells the receiver.
  void Fail(NcclPeer& peer, const absl::Status& why);

 private:
  absl::Status Issue(NcclPeer& peer, Job& job);

  const TransportOptions& options_;
  BatchTable& table_;
  const KvCache* pool_ = nullptr;
  std::vector<CopyOp> ops_;  // reused per chunk
};

}  // namespace pdserve::transfer::nccl
