#pragma once

// The host's floor for a chain of hand-offs: the same-run baseline of `pdserve bench
// control-plane` (issue 15).
//
// Why: every hop of the first token's path wakes a thread that was asleep (the router's
// executor, the prefill worker's reader, the decode worker's notification thread, its loop). What one wake-up costs depends on the host, not on pdserve: on the 2-vCPU
// development VM a bare hand-off takes ~40 us after 20 ms of idleness, ~19 us after 1 ms,
// because an idle virtual CPU halts and the hypervisor must run it again. The control plane's
// gap can only be judged against what the same number of bare hand-offs costs on the same host,
// measured the same way (one at a time, the same idle time before each).
//
// How: `hops` processes forked before anything else starts, joined by unix socketpairs (the
// fast lane's carrier). The bench writes one byte to the first; each passes it on; the last
// reads it, takes CLOCK_MONOTONIC (one clock for every process of the host) and sends the time
// back, outside the measurement. Each process only reads and writes between fork and exit
// (async-signal-safe), so forking from a threaded process is safe too.

#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pdserve::bench {

struct HandoffFloor {
  int hops = 0;
  std::vector<double> us;  // one chain per pass: first write -> last read, microseconds
};

// `passes` chains, each after `idle` of sleep. InvalidArgument for hops outside [1, 16] or
// passes < 1; Internal when a process or a socket cannot be made.
absl::StatusOr<HandoffFloor> MeasureHandoffFloor(int hops, int passes, absl::Duration idle);

}  // namespace pdserve::bench
