#include "transfer/nccl/nccl_comm.h"

#include <sched.h>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "transfer/nccl/nccl_protocol.h"

namespace pdserve::transfer::nccl {

static_assert(sizeof(ncclUniqueId) == kUniqueIdBytes, "the Init message carries one ncclUniqueId");

absl::Status NcclStatus(ncclResult_t result, const char* what) {
  if (result == ncclSuccess) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": ", ncclGetErrorString(result), " (",
                                       ncclGetLastError(nullptr), ")");
  if (result == ncclRemoteError || result == ncclSystemError) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

absl::StatusOr<std::string> Comm::NewUniqueId() {
  ncclUniqueId id;
  if (absl::Status s = NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"); !s.ok()) return s;
  return std::string(reinterpret_cast<const char*>(&id), sizeof(id));
}

absl::StatusOr<std::unique_ptr<Comm>> Comm::Start(const std::string& unique_id, int rank) {
  if (unique_id.size() != sizeof(ncclUniqueId)) {
    return absl::InvalidArgumentError("an NCCL unique id of the wrong size");
  }
  ncclUniqueId id;
  std::memcpy(&id, unique_id.data(), sizeof(id));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  const ncclResult_t r = ncclCommInitRankConfig(&comm, 2, id, rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    if (comm != nullptr) ncclCommAbort(comm);
    return NcclStatus(r, "ncclCommInitRankConfig");
  }
  return std::unique_ptr<Comm>(new Comm(comm));
}

Comm::~Comm() {
  // Abort, not Finalize + Destroy: finalising waits for the peer, which may be gone.
  if (comm_ != nullptr) ncclCommAbort(comm_);
}

absl::StatusOr<bool> Comm::Ready() {
  ncclResult_t state = ncclSuccess;
  if (absl::Status s = NcclStatus(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
      !s.ok()) {
    return s;
  }
  if (state == ncclInProgress) return false;
  if (state != ncclSuccess) return NcclStatus(state, "NCCL communicator");
  return true;
}

absl::Status Comm::Issue(std::span<const CopyOp> ops, bool send, std::byte* base,
                         cudaStream_t stream, int64_t deadline_ns) {
  for (size_t at = 0; at < ops.size(); at += kOpsPerGroup) {
    const std::span<const CopyOp> group = ops.subspan(at, std::min(kOpsPerGroup, ops.size() - at));
    ncclResult_t r = ncclGroupStart();
    for (const CopyOp& op : group) {
      if (r != ncclSuccess) break;
      // Rank 0 sends, rank 1 receives: the peer is always the other rank.
      r = send ? ncclSend(base + op.src, op.bytes, ncclUint8, 1, comm_, stream)
               : ncclRecv(base + op.dst, op.bytes, ncclUint8, 0, comm_, stream);
    }
    const ncclResult_t end = ncclGroupEnd();
    if (r == ncclSuccess) r = end;
    if (r != ncclSuccess && r != ncclInProgress) {
      return NcclStatus(r, send ? "ncclSend" : "ncclRecv");
    }
    // A non-blocking group may still be on its way to the stream: no other call on this
    // communicator (nor the caller's event record) until it is there.
    for (;;) {
      absl::StatusOr<bool> ready = Ready();
      if (!ready.ok()) return ready.status();
      if (*ready) break;
      if (MonotonicNanos() > deadline_ns) {
        return absl::DeadlineExceededError("NCCL did not enqueue a group of sends/receives in time");
      }
      sched_yield();
    }
  }
  return absl::OkStatus();
}

}  // namespace pdserve::transfer::nccl
