#pragma once

#include <string>

#include "absl/status/status.h"

namespace pdserve::bench {

struct TransferBenchOptions {
  bool full = false;          // the whole sweep (block sizes x batch sizes x layouts x backends)
  double min_seconds = 0.15;  // per measurement
  std::string json_path;      // empty: no JSON file
  // Internal: run as the receiving process ("BACKEND,UCX_TLS,PRESET,BLOCK_SIZE,LAYOUT,BLOCKS").
  std::string receiver_spec;
};

// `pdserve bench transfer`: KV block batches from this process into a receiver process it
// starts (re-executing the binary), for the local backend and UCX with UCX_TLS=posix and tcp.
// Bandwidth, per-batch latency p50/p99 and operations per batch, next to memcpy of the same
// bytes (local) and ucx_perftest ucp_put_bw at the same message size and UCX_TLS (ucx), plus the
// 256 MiB llama3-8b request in both layouts (coalescing). Table on stdout, JSON on request.
absl::Status RunTransferBench(const TransferBenchOptions& options);

// The receiving side (options.receiver_spec): prints its descriptor, drains notifications
// until stdin closes.
absl::Status RunTransferBenchReceiver(const std::string& spec);

}  // namespace pdserve::bench
