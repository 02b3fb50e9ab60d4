#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::local {

// `local`: same host, different processes. The receiving pool lives in POSIX shared memory; a
// sender maps it once at LoadPeer and its copy threads memcpy blocks straight into it (large
// batches split across threads), then write the notification into a per-connection ring in
// shared memory, with a unix socket for the hello, peer death, waking a parked receiver and
// messages that do not fit (see notify_channel.h, notify_ring.h). Registration = mapping +
// socket + ring, once per pool / peer.
absl::StatusOr<std::unique_ptr<KvTransport>> MakeLocalTransport(const TransportOptions& options);

// POSIX shared memory, so that a sender can map the pool.
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateLocalPoolMemory(size_t bytes);

}  // namespace pdserve::transfer::local
