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
};

// One request's KV transfer, placed on the load generator's clock: it ends when the request's
// KV had landed (request start + the TTFT stages up to and including kv_transfer, the part of
// the transfer not hidden under the prefill) and lasted the timeline's transfer_ms. The
// client -> router leg (well under a millisecond on one host) is left out. False when the
// timeline lacks the fields (an older result).
bool IntervalOf(double start_s, const nlohmann::json& timeline, TransferInterval* out);

// For each interval: true when no other interval through the same prefill worker or the same
// decode worker intersects it.
std::vector<bool> RanAlone(const std::vector<TransferInterval>& intervals);

}  // namespace pdserve::bench
