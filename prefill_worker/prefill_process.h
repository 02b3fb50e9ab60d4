#pragma once

#include "absl/status/status.h"
#include "service/worker_process.h"

namespace pdserve::prefill {

// `pdserve prefill`: builds the KV pool, registers it with the transfer backend, serves
// PrefillWorker, registers with the router and heartbeats, until SIGINT/SIGTERM. The caller must
// have blocked those signals (service::BlockTerminationSignals) first.
absl::Status RunPrefillWorker(service::WorkerProcessOptions options);

}  // namespace pdserve::prefill
