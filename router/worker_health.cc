#include "router/worker_health.h"

#include <algorithm>

namespace pdserve::router {

absl::Duration CircuitBreakerPolicy::QuarantineFor(int trip) const {
  absl::Duration d = options_.base_quarantine;
  for (int i = 1; i < trip && d < options_.max_quarantine; ++i) d *= 2;
  return std::min(d, options_.max_quarantine);
}

void CircuitBreakerPolicy::OnSuccess(const std::string& worker) {
  auto it = workers_.find(worker);
  if (it != workers_.end()) it->second = WorkerHealth{};
}

void CircuitBreakerPolicy::OnFailure(const std::string& worker, absl::Time now) {
  WorkerHealth& h = workers_[worker];
  h.consecutive_failures++;
  if (options_.failure_threshold < 1) return;
  if (now < h.quarantined_until) return;  // already open: a late outcome of an earlier placement
  if (h.consecutive_failures >= options_.failure_threshold) {
    h.trips++;
    h.quarantined_until = now + QuarantineFor(h.trips);
    h.trial_in_flight = false;  // a failed trial, or a late failure that beat it: open again
  }
}

bool CircuitBreakerPolicy::Placeable(const std::string& worker, absl::Time now) const {
  return PlacementBudget(worker, now) != 0;
}

int CircuitBreakerPolicy::PlacementBudget(const std::string& worker, absl::Time now) const {
  const WorkerHealth h = Health(worker, now);
  if (h.quarantined) return 0;
  if (!h.half_open) return kUnlimitedPlacements;
  const bool trial_pending = h.trial_in_flight && now < h.trial_placed + options_.trial_timeout;
  return trial_pending ? 0 : 1;
}

void CircuitBreakerPolicy::OnPlaced(const std::string& worker, absl::Time now) {
  auto it = workers_.find(worker);
  if (it == workers_.end() || PlacementBudget(worker, now) != 1) return;
  it->second.trial_in_flight = true;
  it->second.trial_placed = now;
}

WorkerHealth CircuitBreakerPolicy::Health(const std::string& worker, absl::Time now) const {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return WorkerHealth{};
  WorkerHealth h = it->second;
  h.quarantined = now < h.quarantined_until;
  // Tripped and not yet closed by a success: the quarantine is over, the trial decides.
  h.half_open = !h.quarantined && h.trips > 0;
  return h;
}

}  // namespace pdserve::router
