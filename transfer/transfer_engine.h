#pragma once

// The narrow part of a KV transfer backend, in the spirit of a NIXL backend engine or a
// Mooncake transport: make the pool reachable, connect to a peer, post a planned batch (and its
// notification), say what it used. Everything every backend would otherwise repeat is the
// front's (transport_front.h): descriptor parsing and the geometry check, the peer table and
// its ids, batch validation and planning (PlanCopies), handles, Poll / Wait / Stats, the
// notification inbox, and the counters they own.
//
// An engine completes the batches it posts in the context's BatchTable (Begin then Complete,
// or AddFinished for a batch that ended inside Post) and pushes what its receive path brings
// into the context's inbox, only once the batch's bytes have landed. Engines with
// a two-sided protocol (the receiver posts its receives for the blocks it reserved, as NCCL
// needs) declare it in their capabilities (one_sided = false) and keep that state per peer.

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "transfer/batch_table.h"
#include "transfer/copy_plan.h"
#include "transfer/kv_transport.h"
#include "transfer/notification_inbox.h"
#include "transfer/pool_descriptor.h"

namespace pdserve::transfer {

// What an engine keeps per connected peer; the front holds it (shared: a batch or a window may
// outlive RemovePeer) and hands it back to the engine that made it.
struct EnginePeer {
  virtual ~EnginePeer() = default;
};

// What the front lends its engine. Both outlive the engine (the front destroys it first).
struct EngineContext {
  const TransportOptions& options;
  BatchTable& table;
  NotificationInbox& inbox;
};

// One batch as the front validated and planned it.
struct PlannedBatch {
  std::span<const BlockCopy> copies;  // as the caller gave them (valid, non-empty)
  std::span<const CopyOp> ops;        // coalesced runs (PlanCopies)
  uint64_t bytes = 0;
  const std::string& notification;    // empty: none; at most kMaxNotificationBytes
};

class TransferEngine {
 public:
  virtual ~TransferEngine() = default;

  // Makes `cache` reachable for peers and adds what they need to `descriptor`, whose common
  // part (backend, agent, pool id, geometry) the front filled. Called once.
  virtual absl::Status Register(const KvCache& cache, PoolDescriptor& descriptor) = 0;
  // Opens what sending to the peer needs. `peer` passed CheckCompatible against the registered
  // pool; `geometry` is the peer pool's. Its fields came from another process: check them.
  virtual absl::StatusOr<std::shared_ptr<EnginePeer>> Connect(const PoolDescriptor& peer,
                                                              const KvGeometry& geometry) = 0;
  // The peer was removed: no batch to it is posted again, and those in flight end Cancelled or
  // finish first.
  virtual void Disconnect(EnginePeer& peer) = 0;
  // Starts the batch and returns its handle from the context's table; the notification follows
  // kv_transport.h's Ordering. ResourceExhausted from the table passes through.
  virtual absl::StatusOr<TransferId> Post(const std::shared_ptr<EnginePeer>& peer,
                                          const PlannedBatch& batch) = 0;

  // Engine-specific counters (transports, senders lost or refused); the front fills the rest.
  virtual void AddCounters(TransportCounters& /*counters*/) const {}
  // The transports that carry this peer's batches (kv_transport.h PeerTransports).
  virtual std::string Transports(const EnginePeer& /*peer*/) const { return ""; }
  // Zero-copy (kv_window.h), for engines whose capabilities say in_place_windows; the front
  // checked the blocks against the peer's pool.
  virtual absl::StatusOr<std::unique_ptr<KvWriteWindow>> OpenWindow(
      const std::shared_ptr<EnginePeer>& /*peer*/, std::span<const BlockId> /*blocks*/) {
    return absl::UnimplementedError("this KV backend cannot write a peer's pool in place");
  }
  // Wait polls a handle this long (yielding) before it blocks: an engine whose batches often
  // end within microseconds of Submit saves the waiter a futex wake-up.
  virtual absl::Duration wait_spin() const { return absl::ZeroDuration(); }
};

}  // namespace pdserve::transfer
