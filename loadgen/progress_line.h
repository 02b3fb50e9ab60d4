#pragma once

#include <cstdint>

#include "loadgen/call_tracker.h"

namespace pdserve::loadgen {

// The live "done / sent / failed, current rate" line on stderr. Drawn only when enabled (the
// runner enables it for a tty), redrawn in place with '\r'.
class ProgressLine {
 public:
  ProgressLine(bool enabled, int total, int64_t start_ns);
  void Update(const CallTracker::Counts& counts, int64_t now_ns);
  void Finish(const CallTracker::Counts& counts, int64_t now_ns);

 private:
  const bool enabled_;
  const int total_;
  const int64_t start_ns_;
  int64_t last_ns_;
  int last_sent_ = 0;
};

}  // namespace pdserve::loadgen
