#pragma once

// Timing helper shared by the CPU benchmarks: the best of repeated runs.

#include <algorithm>
#include <cstdint>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/status_macros.h"

namespace pdserve::bench {

// Runs `body` until `min_seconds` have passed (at least twice, the first run is warm-up) and
// returns the best time of one run in seconds.
template <typename Body>
absl::StatusOr<double> BestSeconds(double min_seconds, Body body) {
  double best = 1e30;
  const int64_t deadline = MonotonicNanos() + static_cast<int64_t>(min_seconds * 1e9);
  for (int run = 0; run < 2 || MonotonicNanos() < deadline; ++run) {
    const int64_t t0 = MonotonicNanos();
    RETURN_IF_ERROR(body());
    if (run > 0) best = std::min(best, (MonotonicNanos() - t0) / 1e9);
  }
  return best;
}

}  // namespace pdserve::bench
