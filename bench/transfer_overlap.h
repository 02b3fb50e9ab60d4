#pragma once

// Which serving KV transfers ran alone. The same-run microbenchmark moves one request's KV at a
// time; in a serving run two requests that arrive close together (Poisson arrivals, or one
// prefill batch) send their KV at the same time through the same workers and share the copy
// threads, the link and the memory bandwidth. A transfer is compared with the microbenchmark
// only when no other transfer through its prefill or its decode worker overlapped it; the
// others are reported as what sharing costs.

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace pdserve::bench {

struct TransferInterval {
  double begin_ms = 0;  // on the load generator's clock (its request start times)
  double end_ms = 0;
  std::string prefill_worker;
  std::string decode_worker;
  // How long the backend's copy threads waited for a core during it (RequestTimeline
  // transfer_copy_wait_us; 0 where not measured).
  double copy_wait_ms = 0;
  // The request's own prefill on the same clock (begin = end: unknown). The mock generates a
  // prompt's K/V on the prefill worker's CPU during it, in memory the copies also need.
  double prefill_begin_ms = 0;
  double prefill_end_ms = 0;
};

// One request's KV transfer, placed on the load generator's clock: it ends when the request's
// KV had landed (request start + the TTFT stages up to and including kv_transfer, the part of
// the transfer not hidden under the prefill) and lasted the timeline's transfer_ms. The
// client -> router leg (well under a millisecond on one host) is left out. False when the
// timeline lacks the fields (an older result).
bool IntervalOf(double start_s, const nlohmann::json& timeline, TransferInterval* out);

// A transfer whose copy threads waited for a core for a larger share of its time than the
// microbenchmark's did, by more than this, measured the host's other work (on the 2-core host:
// the decode worker's steps over dozens of running requests at 16 req/s), not the transport:
// it is not held to the microbenchmark. Relative, because the microbenchmark's own copy threads
// wait too on a VM whose two vCPUs do not run at once (~35% of a 64 MiB local transfer on the
// 2-core VM with nothing else running). The wait adds up over the copy threads.
inline constexpr double kStarvedWaitShare = 0.25;
// copy wait / transfer time (0 for a transfer of no time).
double WaitShare(const TransferInterval& interval, double transfer_ms);
bool Starved(double wait_share, double baseline_wait_share);

// For each interval: true when no other interval through the same prefill worker or the same
// decode worker intersects it, and no other request's prefill on the same prefill worker does
// (its mock K/V generation shares the host's memory bandwidth and cores with the copy: a 64 MiB
// local transfer at 1 req/s took 9.3 ms instead of 3.5 while the next request's K/V was made).
std::vector<bool> RanAlone(const std::vector<TransferInterval>& intervals);

}  // namespace pdserve::bench
