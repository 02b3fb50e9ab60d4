#pragma once

// A two-rank NCCL communicator for one sender-receiver pair, non-blocking (ncclConfig_t
// blocking = 0), so that no NCCL call can stall the engine's thread behind a dead or slow peer:
// initialisation, group ends and aborts all return at once and are polled. Only the engine's
// one thread calls into a Comm (NCCL's calls on one communicator must not run concurrently).

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "transfer/copy_plan.h"

namespace pdserve::transfer::nccl {

// NCCL's result as a status: Unavailable for what a peer or the network did (remote and system
// errors), Internal for the rest.
absl::Status NcclStatus(ncclResult_t result, const char* what);

class Comm {
 public:
  // The sender's side makes the id (rank 0 hosts NCCL's bootstrap), the receiver joins with it.
  static absl::StatusOr<std::string> NewUniqueId();
  // Starts joining a communicator of two ranks; Ready() says when it is usable.
  static absl::StatusOr<std::unique_ptr<Comm>> Start(const std::string& unique_id, int rank);
  ~Comm();  // aborts: never waits for operations in flight
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  // true once initialised (or a group issued before has been enqueued), false while NCCL is
  // still working on it, an error when the communicator failed (then only the destructor).
  absl::StatusOr<bool> Ready();

  // Issues `ops` to the other rank on `stream`, at most kOpsPerGroup per ncclGroupStart / End:
  // ncclSend of [base + op.src, +op.bytes) when sending, ncclRecv into [base + op.dst, ...)
  // when receiving. Both sides issue the same ops in the same order (sizes must match). Waits
  // (polling) until NCCL enqueued each group on the stream, at most until `deadline_ns`
  // (MonotonicNanos): DeadlineExceeded then, and the communicator must be aborted.
  absl::Status Issue(std::span<const CopyOp> ops, bool send, std::byte* base, cudaStream_t stream,
                     int64_t deadline_ns);

  static constexpr size_t kOpsPerGroup = 1024;  // NCCL warns past 2048 per group

 private:
  explicit Comm(ncclComm_t comm) : comm_(comm) {}
  ncclComm_t comm_;
};

}  // namespace pdserve::transfer::nccl
