#pragma once

// The backend-neutral KV data plane, in the spirit of NIXL's lifecycle:
//   1. RegisterPool once per KV pool (never per transfer);
//   2. ExportDescriptor -> bytes a peer needs to write into this pool (sent over gRPC by the
//      workers, opaque to them);
//   3. LoadPeer(descriptor) on the sending side;
//   4. Submit a batch of (local block -> remote block) copies with an optional notification;
//   5. Poll / Wait on the handle (every wait has a deadline);
//   6. the receiver gets the notification exactly once, after all the batch's bytes landed;
//   7. RemovePeer / destruction releases endpoints and registrations (RAII).
// No gRPC, CUDA or UCX types appear here; backends live in transfer/<name>/ and are created by
// name through MakeKvTransport.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kvcache/kv_cache.h"

namespace pdserve::transfer {

struct BlockCopy {
  BlockId src = 0;  // logical block id in the local (sending) pool
  BlockId dst = 0;  // logical block id in the peer's (receiving) pool
};

using PeerId = uint64_t;
using TransferId = uint64_t;

struct TransportOptions {
  std::string backend = "local";  // "local" | "ucx" | ...
  std::string agent_name;         // this worker's id; tags notifications and log lines
  int copy_threads = 0;           // local backend: memcpy threads for large batches (0 = auto)
  int max_inflight_batches = 16;  // batches in flight before Submit applies back-pressure
};

struct TransferStats {
  uint64_t bytes = 0;
  uint32_t operations = 0;  // copies / puts actually issued after coalescing
  int64_t submit_ns = 0;    // monotonic clock
  int64_t complete_ns = 0;
};

// What the receiving side learns: `message` from `sender`, delivered once the batch landed.
struct Notification {
  std::string sender;
  std::string message;
};

struct TransportCounters {
  uint64_t registrations = 0;  // memory registrations ever made (must stay 1 per pool)
  uint64_t batches_submitted = 0;
  uint64_t batches_failed = 0;
  uint64_t bytes_sent = 0;
  uint64_t operations_issued = 0;
  std::string transports;  // e.g. UCX's selected transports ("posix", "tcp"); "memcpy" for local
};

class KvTransport {
 public:
  virtual ~KvTransport() = default;

  virtual std::string backend() const = 0;

  // Registers the pool once; the cache (and its memory) must outlive the transport.
  // FailedPrecondition if a pool is already registered.
  virtual absl::Status RegisterPool(const KvCache& cache) = 0;
  // Serialised descriptor of the registered pool (geometry, addresses, keys, names).
  virtual absl::StatusOr<std::string> ExportDescriptor() const = 0;

  // Connects to a peer pool. InvalidArgument for a malformed descriptor or a geometry that does
  // not match the local pool's (block bytes, layout, fragment size).
  virtual absl::StatusOr<PeerId> LoadPeer(const std::string& descriptor) = 0;
  virtual absl::Status RemovePeer(PeerId peer) = 0;

  // Starts copying every block of `copies` to `peer`. InvalidArgument (and no byte written) for
  // a block outside either pool; FailedPrecondition for an unknown / removed peer. The backend
  // coalesces physically contiguous runs into as few operations as possible.
  virtual absl::StatusOr<TransferId> Submit(PeerId peer, std::span<const BlockCopy> copies,
                                            const std::string& notification) = 0;
  // true when the batch completed, false while in flight, an error status when it failed
  // (Unavailable: the peer went away; Internal: the backend failed).
  virtual absl::StatusOr<bool> Poll(TransferId id) = 0;
  // Waits until the batch completes or `timeout` passes (DeadlineExceeded); the batch's
  // resources are released once a final status was returned.
  virtual absl::Status Wait(TransferId id, absl::Duration timeout) = 0;
  virtual absl::StatusOr<TransferStats> Stats(TransferId id) const = 0;

  // Receiving side: notifications that arrived since the last call, in arrival order.
  virtual std::vector<Notification> TakeNotifications() = 0;
  // Waits up to `timeout` for the notification `message` (from any sender) and consumes it.
  virtual absl::Status WaitForNotification(const std::string& message, absl::Duration timeout) = 0;

  virtual TransportCounters counters() const = 0;
};

absl::StatusOr<std::unique_ptr<KvTransport>> MakeKvTransport(const TransportOptions& options);
std::vector<std::string> KvTransportBackends();

}  // namespace pdserve::transfer
