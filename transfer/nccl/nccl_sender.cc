#include "transfer/nccl/nccl_sender.h"

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "kvcache/cuda/cuda_check.h"
#include "transfer/nccl/nccl_protocol.h"

namespace pdserve::transfer::nccl {

absl::Status NcclSender::Issue(NcclPeer& peer, Job& job) {
  const KvCache* pool = pool_;
  const int64_t deadline = MonotonicNanos() + absl::ToInt64Nanoseconds(options_.batch_timeout);
  for (std::span<const BlockCopy> chunk : ChunkCopies(job.copies)) {
    // The receiver learns what to receive before the sends that need its receives.
    RecvMessage m{.generation = peer.generation, .batch = job.tid};
    m.copies.assign(chunk.begin(), chunk.end());
    if (absl::Status s = peer.channel->Send(Encode(m)); !s.ok()) return s;
    if (absl::Status s = PlanCopies(pool->geometry(), peer.geometry, chunk, ops_); !s.ok()) {
      return s;
    }
    if (absl::Status s = peer.comm->Issue(ops_, /*send=*/true,
                                          const_cast<std::byte*>(pool->base()), peer.stream,
                                          deadline);
        !s.ok()) {
      return s;
    }
  }
  cudaEvent_t event = nullptr;
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  if (cudaError_t e = cudaEventRecord(event, peer.stream); e != cudaSuccess) {
    cudaEventDestroy(event);
    return cuda::CudaStatus(e, "cudaEventRecord");
  }
  peer.in_flight.push_back({job.tid, event, std::move(job.notification), deadline});
  return absl::OkStatus();
}

bool NcclSender::Advance(const std::shared_ptr<NcclPeer>& peer_ptr) {
  NcclPeer& peer = *peer_ptr;
  if (peer.queued.empty() && peer.in_flight.empty()) return false;
  if (absl::Status failed = peer.Failed(); !failed.ok()) {
    Fail(peer, failed);
    return false;
  }
  if (peer.channel->PeerGone()) {
    Fail(peer, absl::UnavailableError(absl::StrCat("KV peer '", peer.agent, "' went away")));
    return false;
  }
  const int64_t now = MonotonicNanos();
  if (peer.comm == nullptr) {
    // The first batch: a communicator of two, this side rank 0.
    absl::StatusOr<std::string> id = Comm::NewUniqueId();
    absl::Status s = id.status();
    if (s.ok()) {
      const KvGeometry& own = pool_->geometry();
      s = peer.channel->Send(Encode(InitMessage{
          .generation = peer.generation,
          .unique_id = *id,
          .layout = own.layout(),
          .num_blocks = own.num_blocks(),
          .num_layers = static_cast<uint32_t>(own.config().num_layers),
          .fragment_bytes = static_cast<uint64_t>(own.fragment_bytes())}));
    }
    if (s.ok()) {
      absl::StatusOr<std::unique_ptr<Comm>> comm = Comm::Start(*id, /*rank=*/0);
      if (comm.ok()) peer.comm = std::move(*comm);
      s = comm.status();
    }
    if (!s.ok()) {
      Fail(peer, s);
      return false;
    }
    peer.init_deadline_ns = now + absl::ToInt64Nanoseconds(options_.batch_timeout);
  }
  if (!peer.ready) {
    absl::StatusOr<bool> ready = peer.comm->Ready();
    if (ready.ok() && !*ready && now > peer.init_deadline_ns) {
      ready = absl::UnavailableError(absl::StrCat("KV peer '", peer.agent,
                                                  "' did not join the NCCL communicator in time"));
    }
    if (!ready.ok()) {
      Fail(peer, ready.status());
      return false;
    }
    if (!*ready) return true;
    peer.ready = true;
  }
  while (!peer.queued.empty()) {
    if (absl::Status s = Issue(peer, peer.queued.front()); !s.ok()) {
      Fail(peer, s);
      return false;
    }
    peer.queued.pop_front();
  }
  while (!peer.in_flight.empty()) {
    InFlight& f = peer.in_flight.front();
    const cudaError_t e = cudaEventQuery(f.event);
    if (e == cudaErrorNotReady) {
      if (now > f.deadline_ns) {
        Fail(peer, absl::UnavailableError(absl::StrCat(
                           "KV batch ", f.tid, " to '", peer.agent,
                           "' did not complete within the transfer timeout (NCCL aborted)")));
        return false;
      }
      break;
    }
    cudaEventDestroy(f.event);
    const TransferId tid = f.tid;
    std::string notification = std::move(f.notification);
    peer.in_flight.pop_front();
    if (e != cudaSuccess) {
      Fail(peer, cuda::CudaStatus(e, "ncclSend"));
      return false;
    }
    // By value: PeerOrder may run it later, from whichever call ends the batch ahead.
    peer.order.Landed(table_, tid, [peer_ptr, notification = std::move(notification)] {
      if (notification.empty()) return absl::OkStatus();
      return peer_ptr->channel->Send(
          Encode(NotifyMessage{.generation = peer_ptr->generation, .message = notification}));
    });
  }
  return !peer.queued.empty() || !peer.in_flight.empty();
}

void NcclSender::Fail(NcclPeer& peer, const absl::Status& why) {
  {
    std::lock_guard lock(peer.mu);
    if (peer.failed.ok()) peer.failed = why;
  }
  if (peer.comm != nullptr) {
    // The receiver aborts its side too, so that none of its receives lands later.
    (void)peer.channel->Send(Encode(AbortMessage{.generation = peer.generation}));
    peer.comm.reset();
  }
  for (InFlight& f : peer.in_flight) {
    cudaEventDestroy(f.event);
    peer.order.Landed(table_, f.tid, [why] { return why; });
  }
  for (Job& j : peer.queued) peer.order.Landed(table_, j.tid, [why] { return why; });
  peer.in_flight.clear();
  peer.queued.clear();
}

}  // namespace pdserve::transfer::nccl
