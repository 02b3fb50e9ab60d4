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
  }
}

bool CircuitBreakerPolicy::Placeable(const std::string& worker, absl::Time now) const {
  auto it = workers_.find(worker);
  return it == workers_.end() || now >= it->second.quarantined_until;
}

WorkerHealth CircuitBreakerPolicy::Health(const std::string& worker, absl::Time now) const {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return WorkerHealth{};
  WorkerHealth h = it->second;
  h.quarantined = now < h.quarantined_until;
  return h;
}

}  // namespace pdserve::router
