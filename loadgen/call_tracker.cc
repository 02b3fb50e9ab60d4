#include "loadgen/call_tracker.h"

#include <algorithm>

namespace pdserve::loadgen {

void CallTracker::OnSent() {
  absl::MutexLock lock(&mu_);
  ++counts_.sent;
  ++counts_.in_flight;
  counts_.peak_in_flight = std::max(counts_.peak_in_flight, counts_.in_flight);
}

void CallTracker::OnDone(bool ok, int64_t now_ns) {
  absl::MutexLock lock(&mu_);
  ++counts_.done;
  if (!ok) ++counts_.failed;
  --counts_.in_flight;
  counts_.last_done_ns = std::max(counts_.last_done_ns, now_ns);
}

void CallTracker::WaitForSlot(int limit) {
  if (limit <= 0) return;
  absl::MutexLock lock(&mu_);
  auto has_slot = [this, limit]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return counts_.in_flight < limit;
  };
  mu_.Await(absl::Condition(&has_slot));
}

bool CallTracker::WaitAllDone(int expected, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto all_done = [this, expected]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return counts_.done >= expected;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&all_done), timeout);
}

CallTracker::Counts CallTracker::Read() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

}  // namespace pdserve::loadgen
