#pragma once

// The serving benchmark's same-run transfer baseline: the time `pdserve bench transfer`'s
// two-process set-up (bench/transfer_pair.h) takes to move one request's KV, for the bytes a
// serving request of a given prompt length moves, so that the report can print serving /
// microbenchmark ratios measured on the same host in the same run.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pdserve::bench {

struct RequestTransferBaseline {
  std::string backend;  // as `pdserve bench` names it: "local", "ucx-posix", ...
  int input_len = 0;    // prompt tokens: the request's KV is ceil(input_len / block) blocks
  uint32_t blocks = 0;
  uint64_t bytes = 0;  // per transfer, as the backend counted them
  uint32_t ops = 0;    // operations the backend issued per transfer
  int transfers = 0;   // measured (after one warm-up)
  // Submit -> Wait returned, as the prefill worker times a request, each transfer after the
  // last-level cache was flushed and the transport sat idle for a few ms: what a serving
  // request meets (its KV was written while other work ran, and requests do not come back to
  // back). The figure the serving run is held to.
  double mean_ms = 0;
  double p50_ms = 0;
  double min_ms = 0;
  // The same transfers back to back, as `pdserve bench transfer` runs them: sources and
  // destinations stay in the last-level cache when they fit (a 16 MiB request here does).
  double warm_mean_ms = 0;
  // The cold transfers, sorted, and how many measurements they pool (MergeBaseline).
  std::vector<double> cold_ms;
  // Of each cold transfer: how long the backend's copy threads waited for a core, as a share of
  // its time (TransferStats::copy_wait_ns; 0 where the backend does not measure it), sorted.
  std::vector<double> cold_wait_share;
  int rounds = 1;
  // The figure a serving run is compared with: the cold median. A few cold ucx transfers took
  // 10-100x the others (a transport waking from idle), which made a mean of 17 swing 2-11 ms.
  double Reference() const { return p50_ms; }
  // The median of cold_wait_share (0 when none): what a serving transfer's wait is held to.
  double WaitShare() const;
};

// Pools `more` (the same backend and prompt length, measured again) into `into`: the cold
// figures from every cold transfer of both, the warm mean weighted by transfers. The serving
// bench measures each backend before and after its cells: one measurement taken while the host
// had a transient (a 512-token local row once read 13.8 ms against 4.4 ms in the run before)
// would otherwise set the yardstick of every cell.
void MergeBaseline(RequestTransferBaseline& into, const RequestTransferBaseline& more);

// Moves one request's KV (blocks of `preset` in `layout`, destination blocks in shuffled runs
// of 8 as in `pdserve bench transfer`) from a pool in this process into a receiver process,
// one transfer at a time, for every prompt length in `input_lens`: at least `min_transfers`
// transfers and `min_seconds` each. `backend`: "local", "ucx" or "ucx-<UCX_TLS>"; ucx runs pin
// the two sides to two CPUs as `pdserve bench transfer` does. UCX_TLS of this process is set for
// the measurement and restored afterwards. Unavailable when the receiver cannot start.
absl::StatusOr<std::vector<RequestTransferBaseline>> MeasureRequestTransfers(
    const std::string& backend, const std::string& preset, const std::string& layout,
    const std::vector<int>& input_lens, double min_seconds, int min_transfers);

}  // namespace pdserve::bench
