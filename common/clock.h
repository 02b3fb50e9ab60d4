#pragma once

#include <chrono>
#include <cstdint>

#include "absl/time/time.h"

namespace pdserve {

// Wall-clock microseconds since the Unix epoch: comparable between processes and hosts (the
// request timeline). Durations inside one process use MonotonicNanos().
inline int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline int64_t MonotonicMicros() { return MonotonicNanos() / 1000; }

// absl::Time on the monotonic clock, for the leases, heartbeats and timeouts one process sets
// and checks itself: a step of the wall clock (NTP, a VM resumed) must not expire them all at
// once. Only ever compared with another SteadyNow(): never with absl::Now(), never passed to
// absl's waits (they read the wall clock), never sent to another process.
inline absl::Time SteadyNow() { return absl::UnixEpoch() + absl::Nanoseconds(MonotonicNanos()); }

}  // namespace pdserve
