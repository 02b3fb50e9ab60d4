#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::autosel {

// `auto`: the transport for a cluster that spans hosts. It holds two engines over one pool in
// POSIX shared memory, registered with both: `local` (memcpy into the peer's mapped pool) and
// `ucx` (the network). Its descriptor carries this worker's host id (TransportOptions::host_id)
// and both engines' descriptors; LoadPeer picks per peer: `local` when the peer names the same
// host and its pool can be mapped here, `ucx` otherwise. A peer that names this host but whose
// pool cannot be mapped (another /dev/shm, e.g. a container of its own) goes over ucx with a
// WARN line and a counter (TransportCounters::same_host_network_peers), never silently.
// PeerBackend says which engine a peer got ("auto/local", "auto/ucx"): the prefill worker puts
// it in each request's timeline. Both engines deliver notifications into one inbox.
// Zero-copy windows are not offered (a per-peer capability the workers do not ask for).
absl::StatusOr<std::unique_ptr<KvTransport>> MakeAutoTransport(const TransportOptions& options);

// The local engine's memory (POSIX shared memory), which ucx registers as well.
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateAutoPoolMemory(size_t bytes);

}  // namespace pdserve::transfer::autosel
