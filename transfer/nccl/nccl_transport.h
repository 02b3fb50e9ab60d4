#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::nccl {

// `nccl`: KV pools in device memory, moved with NCCL point-to-point (ncclSend / ncclRecv), the
// collective-library way vLLM's P2pNcclConnector moves KV, beside the one-sided backends (NIXL-
// like ucx, cuda-ipc). Two-sided (TransportCapabilities::one_sided = false):
//   - one communicator of two ranks per sender-receiver pair, made lazily at the first batch:
//     the sender (rank 0) makes the NCCL unique id and sends it in an Init message over the
//     receiver's notification channel (transfer/notify's authenticated unix socket: same
//     host), both join, non-blocking;
//   - per batch, the sender sends the receiver the block pairs (Recv messages, nccl_protocol.h),
//     then issues its ncclSends of the coalesced runs inside ncclGroupStart / End on its stream
//     and records a CUDA event; the receiver plans the same runs from the block pairs against
//     its own pool and posts the matching ncclRecvs on its stream;
//   - the sender's batch completes when its event does; its notification goes after it, and
//     the receiver delivers it once every receive before it completed on its side;
//   - every NCCL call runs on the engine's one thread, which polls events, communicators and
//     deadlines: a dead peer (its channel closes), an NCCL error or a batch past
//     TransportOptions::batch_timeout aborts the communicator (ncclCommAbort) and ends that
//     peer's batches with Unavailable; RemovePeer ends them Cancelled. The side that gives up
//     tells the other (Abort), which aborts its communicator too, so that no receive posted
//     for a given-up batch lands later.
// NCCL refuses two ranks of one communicator on one GPU: LoadPeer refuses a peer whose pool is
// on this process's GPU (place prefill and decode on different GPUs: --prefill-gpus /
// --decode-gpus).
absl::StatusOr<std::unique_ptr<KvTransport>> MakeNcclTransport(const TransportOptions& options);

// Device memory on this process's GPU (device 0 of its CUDA_VISIBLE_DEVICES).
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateNcclPoolMemory(size_t bytes);

// The linked NCCL's version, for reports.
std::string NcclRuntimeSummary();

}  // namespace pdserve::transfer::nccl
