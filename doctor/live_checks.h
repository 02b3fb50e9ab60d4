#pragma once

// `pdserve doctor --endpoint HOST:PORT`: the slow-KV-transfer checklist applied to a running
// cluster's counters (what each prefill worker's transport did since it started), as far as
// counters can answer it. Items that need per-request timings (overlap, vs-baseline, the TTFT
// tail) say so and point at a `pdserve bench` results folder. Plain values in: the CLI turns
// the router's ClusterStatus into LiveWorkers, so this library needs no gRPC.

#include <cstdint>
#include <string>
#include <vector>

#include "doctor/checks.h"

namespace pdserve::doctor {

// One sending (prefill) worker's counters, as the router's status reports them.
struct LiveWorker {
  std::string id;
  std::string host;        // its host id
  std::string backend;     // registered transfer backend ("local", "ucx", "ucx-staged", "auto")
  std::string transports;  // what its transport says it uses
  uint64_t requests = 0;   // requests it served
  uint64_t registrations = 0;
  uint64_t batches = 0;    // completed batches
  uint64_t failed_batches = 0;
  uint64_t bytes = 0;      // bytes of completed batches
  uint64_t operations = 0;
  uint64_t same_host_network_peers = 0;
  // The cluster's KV layout and block size, for the fixes it names.
  std::string layout;
  int block_size = 0;
  std::string gpu;     // PCI bus id of its pool's GPU; empty: host memory
  int numa_node = -1;  // of the CPUs it may run on; -1: unknown or several
};

// Where a receiving (decode) worker sits.
struct LivePlace {
  std::string id;
  std::string host;
  std::string gpu;
  int numa_node = -1;
};

// One BackendDiagnosis per worker ("prefill-0 (ucx)"), findings in the checklist's order; the
// placement item sets each against the `decode` workers it may send to.
Diagnosis DiagnoseLive(const std::string& endpoint, const std::vector<LiveWorker>& workers,
                       const std::vector<LivePlace>& decode = {});

// The placement item of one sending worker against the decode workers: same host or not, same
// GPU (warn: two CUDA contexts time-slice it), peer GPUs, NUMA nodes (warn when they differ).
Finding PlacementFinding(const LiveWorker& w, const std::vector<LivePlace>& decode);

}  // namespace pdserve::doctor
