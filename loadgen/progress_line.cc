#include "loadgen/progress_line.h"

#include <cstdio>

namespace pdserve::loadgen {

ProgressLine::ProgressLine(bool enabled, int total, int64_t start_ns)
    : enabled_(enabled), total_(total), start_ns_(start_ns), last_ns_(start_ns) {}

void ProgressLine::Update(const CallTracker::Counts& c, int64_t now_ns) {
  if (!enabled_) return;
  const double window_s = static_cast<double>(now_ns - last_ns_) * 1e-9;
  const double rate = window_s > 0 ? (c.sent - last_sent_) / window_s : 0.0;
  std::fprintf(stderr,
               "\r[loadgen] done %d/%d  sent %d  failed %d  in flight %d  send rate %.1f req/s  "
               "%.1f s   ",
               c.done, total_, c.sent, c.failed, c.in_flight, rate,
               static_cast<double>(now_ns - start_ns_) * 1e-9);
  std::fflush(stderr);
  last_ns_ = now_ns;
  last_sent_ = c.sent;
}

void ProgressLine::Finish(const CallTracker::Counts& counts, int64_t now_ns) {
  if (!enabled_) return;
  Update(counts, now_ns);
  std::fputc('\n', stderr);
}

}  // namespace pdserve::loadgen
