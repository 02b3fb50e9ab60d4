#pragma once

#include "absl/status/status.h"
#include "prefill_worker/prefill_engine.h"
#include "service/worker_process.h"

namespace pdserve::prefill {

// `pdserve prefill`: builds the KV pool, registers it with the transfer backend, serves
// PrefillWorker, registers with the router and heartbeats, until SIGINT/SIGTERM. The caller must
// have blocked those signals (service::BlockTerminationSignals) first.
absl::Status RunPrefillWorker(service::WorkerProcessOptions options);

// The engine options a worker's flags and compute mode give (also `pdserve colocated`'s).
PrefillEngineOptions PrefillEngineOptionsFor(const service::WorkerProcessOptions& options,
                                             const service::WorkerCompute& compute);

}  // namespace pdserve::prefill
