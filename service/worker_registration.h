#pragma once

// The registration a prefill or decode worker sends the router: who it is, where it listens, and
// what a peer needs to move KV into or out of its pool.

#include <cstdint>
#include <string>

#include "pdserve.pb.h"
#include "service/router_link.h"
#include "service/worker_process.h"

namespace pdserve::service {

struct WorkerPool {
  std::string transport_backend;     // the transfer backend's own name (KvTransport::backend())
  std::string transport_descriptor;  // its exported pool descriptor
  uint32_t num_blocks = 0;
  uint64_t block_bytes = 0;
  std::string layout;                // "layer-major" | "block-major"
  uint32_t block_size = 0;           // tokens per block
  std::string gpu;                   // PCI bus id of the GPU holding it; empty: host memory
};

// The NUMA node of every CPU this process may run on (sched_getaffinity, sysfs); -1 when unknown
// or when they span several nodes.
int NumaNodeOfAllowedCpus();

// Router link options for this worker. The pool registers under --transfer's name for
// ucx-staged (which runs over the ucx backend), so that the router matches it against the
// cluster's; under the backend's own name otherwise.
// `config` is the worker's resolved model: the router refuses the worker unless it is its own.
RouterLinkOptions WorkerLinkOptions(const WorkerProcessOptions& options, const ModelConfig& config,
                                    v1::WorkerRole role, const std::string& address,
                                    const WorkerPool& pool);

// "1024 blocks of 2097152 bytes (2048 MiB, layer-major), transfer ucx, compute cuda"
std::string DescribeWorkerPool(const WorkerProcessOptions& options, const WorkerPool& pool);

}  // namespace pdserve::service
