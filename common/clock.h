#pragma once

#include <chrono>
#include <cstdint>

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

}  // namespace pdserve
