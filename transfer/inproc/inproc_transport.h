#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::inproc {

// `inproc`: the prefill and the decode engine of one colocated worker share one pool, so KV
// never moves. The prefill kernels write straight into the blocks the decode side reserved, and
// a batch only announces that they are written: every copy must name the same block on both
// sides (src == dst; anything else is InvalidArgument), a batch completes at Submit with 0 bytes
// and 0 operations, and its notification goes to this transport's own inbox.
// LoadPeer accepts only this transport's own descriptor: another process's pool (or another
// transport's in this process) is refused, so `inproc` between two workers fails at wiring,
// not with wrong tokens.
absl::StatusOr<std::unique_ptr<KvTransport>> MakeInprocTransport(const TransportOptions& options);

// Private host memory (no peer process maps it).
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateInprocPoolMemory(size_t bytes);

}  // namespace pdserve::transfer::inproc
