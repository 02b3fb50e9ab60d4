#pragma once

#include "absl/status/status.h"
#include "decode_worker/decode_engine.h"
#include "service/worker_process.h"

namespace pdserve::decode {

// `pdserve decode`: builds the KV pool in POSIX shared memory, registers it with the transfer
// backend, serves DecodeWorker, registers with the router and heartbeats, until SIGINT/SIGTERM.
// The caller must have blocked those signals (service::BlockTerminationSignals) first.
absl::Status RunDecodeWorker(service::WorkerProcessOptions options);

// The engine options a worker's flags and compute mode give (also `pdserve colocated`'s).
DecodeEngineOptions DecodeEngineOptionsFor(const service::WorkerProcessOptions& options,
                                           const service::WorkerCompute& compute);

}  // namespace pdserve::decode
