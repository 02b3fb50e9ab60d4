#pragma once

#include "absl/status/status.h"
#include "service/worker_process.h"

namespace pdserve::colocated {

// `pdserve colocated`: one process that serves both PrefillWorker and DecodeWorker over one KV
// pool, the way a single vLLM instance serves prefill and decode. The prefill kernels write the
// decode reservation's blocks directly (transfer backend `inproc`: no byte moves, the
// notification is local), and prefill batches and decode steps take turns on one device
// (common/shared_device.h). It registers with the router once, as WORKER_ROLE_COLOCATED: the
// router places a request's prefill and decode on the same colocated worker, with the same
// scheduler and admission rules as P/D, so that a run against a P/D cluster isolates what
// disaggregation costs. The caller must have blocked SIGINT/SIGTERM first.
absl::Status RunColocatedWorker(service::WorkerProcessOptions options);

}  // namespace pdserve::colocated
