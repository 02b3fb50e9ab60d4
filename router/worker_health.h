#pragma once

// The router's health policy for workers: which workers placement may choose, from the outcomes
// of the requests they served. Without it a decode worker that fails every request at once looks
// the emptiest and wins every placement, and a prefill worker whose batches all time out keeps
// being chosen.
//
// A policy object (like the waiting queue's): the router reports outcomes and asks
// Placeable(worker, now) before each scheduling step; the policy owns no threads or clocks, so
// it is tested with known sequences of outcomes and times.
//
// CircuitBreakerPolicy, the one in use:
//  - closed: a worker is placeable; each failure counts, a success resets the count.
//  - open (quarantined): after `failure_threshold` consecutive failures the worker is not
//    placeable for base_quarantine, doubling with each further trip up to max_quarantine.
//  - half-open: once the quarantine ends, placement may give the worker exactly one request (the
//    trial; OnPlaced marks it) and nothing more until its outcome: a success closes the breaker
//    and resets the backoff, a failure opens it again at once with the doubled quarantine. A
//    trial whose outcome never comes (its client cancelled it) stops holding the worker back
//    after trial_timeout, and the next request becomes the trial. Failures reported while open
//    (requests placed before the trip ending late) count but do not extend the quarantine.

#include <map>
#include <memory>
#include <string>

#include "absl/time/time.h"

namespace pdserve::router {

struct WorkerHealth {
  int consecutive_failures = 0;
  bool quarantined = false;  // at the time asked
  absl::Time quarantined_until = absl::InfinitePast();
  int trips = 0;  // openings since the last success
  bool half_open = false;        // at the time asked: quarantine over, no success yet
  bool trial_in_flight = false;  // half-open and its one trial request is placed
  absl::Time trial_placed = absl::InfinitePast();
};

// PlacementBudget's answer for a worker placement may use freely.
inline constexpr int kUnlimitedPlacements = -1;

class WorkerHealthPolicy {
 public:
  virtual ~WorkerHealthPolicy() = default;
  // A request (decode) or batch (prefill) the worker served ended well / badly at `now`.
  virtual void OnSuccess(const std::string& worker) = 0;
  virtual void OnFailure(const std::string& worker, absl::Time now) = 0;
  // Whether placement may choose the worker at `now`. Unknown workers are placeable.
  virtual bool Placeable(const std::string& worker, absl::Time now) const = 0;
  // How many requests placement may give the worker at `now` before it asks again:
  // kUnlimitedPlacements, or a count (0: none, 1: a half-open breaker's trial).
  virtual int PlacementBudget(const std::string& worker, absl::Time now) const = 0;
  // Placement gave the worker a request (decode) or a batch item (prefill) at `now`.
  virtual void OnPlaced(const std::string& worker, absl::Time now) = 0;
  virtual WorkerHealth Health(const std::string& worker, absl::Time now) const = 0;
  // The worker left, or registered anew (a restarted process starts with a clean record).
  virtual void Forget(const std::string& worker) = 0;
};

struct CircuitBreakerOptions {
  int failure_threshold = 3;  // consecutive failures that open the breaker (< 1: never opens)
  absl::Duration base_quarantine = absl::Seconds(1);
  absl::Duration max_quarantine = absl::Seconds(30);
  // A half-open trial without an outcome after this long no longer holds the worker back.
  absl::Duration trial_timeout = absl::Seconds(60);
};

class CircuitBreakerPolicy final : public WorkerHealthPolicy {
 public:
  explicit CircuitBreakerPolicy(CircuitBreakerOptions options) : options_(options) {}

  void OnSuccess(const std::string& worker) override;
  void OnFailure(const std::string& worker, absl::Time now) override;
  bool Placeable(const std::string& worker, absl::Time now) const override;
  int PlacementBudget(const std::string& worker, absl::Time now) const override;
  void OnPlaced(const std::string& worker, absl::Time now) override;
  WorkerHealth Health(const std::string& worker, absl::Time now) const override;
  void Forget(const std::string& worker) override { workers_.erase(worker); }

  // How long the breaker stays open on its `trip`-th opening (1-based).
  absl::Duration QuarantineFor(int trip) const;

 private:
  CircuitBreakerOptions options_;
  std::map<std::string, WorkerHealth> workers_;
};

}  // namespace pdserve::router
