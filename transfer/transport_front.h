#pragma once

// The one concrete KvTransport that engine backends sit behind (transfer_engine.h): it does what
// every backend needs and none should repeat, so that a new backend (NCCL, NIXL, Mooncake) is
// an engine of a few hundred lines with a line in kv_transport.cc's table.
//   RegisterPool      once per front; the descriptor's common part, then the engine's fields
//   ExportDescriptor  the serialised descriptor
//   LoadPeer          parse (hostile bytes), backend and geometry check, engine Connect, an id
//   RemovePeer        drop the id, engine Disconnect
//   Submit            peer lookup, notification bound, PlanCopies (a bad batch writes nothing),
//                     engine Post
//   Poll/Wait/Stats   the batch table (Wait polls first for engines that ask, wait_spin)
//   notifications     the inbox the engine's receive path fills
//   counters          table, inbox, registrations and peers here; the engine adds its own
// Thread safety: every method may be called from any thread.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "transfer/kv_transport.h"
#include "transfer/transfer_engine.h"

namespace pdserve::transfer {

using EngineFactory =
    std::function<absl::StatusOr<std::unique_ptr<TransferEngine>>(const EngineContext&)>;

// A transport named `backend` (the backend table's name: capabilities() comes from there) over
// the engine `make` builds with the front's table and inbox (options.inbox when given).
absl::StatusOr<std::unique_ptr<KvTransport>> MakeFrontTransport(const TransportOptions& options,
                                                                const std::string& backend,
                                                                const EngineFactory& make);

}  // namespace pdserve::transfer
