#pragma once

// Keeps a started Cluster serving when its processes die: each death is logged (pid, exit code
// or signal) and the process is started again after a backoff; the cluster serves with the
// remaining workers meanwhile, and a restarted worker registers with the router again by
// itself. The router is restarted too (on its port, where the workers find it again), but only
// a bounded number of times in a row: a router that cannot be kept up ends supervision.
//
//   Supervisor supervisor(*cluster);
//   while (running) {
//     RETURN_IF_ERROR(supervisor.Poll());  // from the thread that started the cluster
//     sleep a little;
//   }
//
// Poll runs on the caller's thread, not a thread of its own: PR_SET_PDEATHSIG ties each child to
// the thread that forked it, so restarts must come from the thread that lives as long as the
// cluster.

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "cluster/cluster.h"

namespace pdserve::cluster {

struct RestartPolicyOptions {
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(10);
  // A process that ran this long before dying starts again from initial_backoff.
  absl::Duration stable_after = absl::Seconds(30);
  // Router deaths in a row (none after a stable run) before supervision gives up.
  int max_router_restarts = 5;
};

// When to restart a process that died: exponential backoff over deaths that come quickly, reset
// by a stable run. A policy object with no clock: the caller passes how long the process ran.
class RestartBackoff {
 public:
  explicit RestartBackoff(const RestartPolicyOptions& options) : options_(options) {}
  // The process died after running `uptime`: the delay before starting it again. A `clean`
  // exit (status 0: a worker or router that drained on SIGTERM and left in order) is no sign of
  // a crash loop: it starts again after initial_backoff and leaves the backoff as it was. Else a
  // worker an operator (or a node drain) stops twice within stable_after would wait ever longer
  // to come back, and one stopped every few seconds would climb to max_backoff and stay there.
  absl::Duration OnExit(absl::Duration uptime, bool clean = false);
  // Deaths since the last stable run, this one included.
  int quick_deaths() const { return quick_deaths_; }

 private:
  RestartPolicyOptions options_;
  absl::Duration next_ = absl::ZeroDuration();
  int quick_deaths_ = 0;
};

class Supervisor {
 public:
  explicit Supervisor(Cluster& cluster, RestartPolicyOptions options = {});

  // Reaps the children that died, logs each, and restarts those whose backoff is over.
  // Unavailable (naming the last death) once the router died more than max_router_restarts
  // times in a row: the caller stops the cluster.
  absl::Status Poll(absl::Time now = absl::Now());

  // Restarts of the named child so far.
  int restarts(const std::string& name) const;

 private:
  struct ChildState {
    explicit ChildState(const RestartPolicyOptions& o) : backoff(o) {}
    RestartBackoff backoff;
    bool pending = false;
    absl::Time restart_at;
    int restarts = 0;
  };
  ChildState& State(const std::string& name);

  Cluster& cluster_;
  RestartPolicyOptions options_;
  std::map<std::string, ChildState> children_;
  absl::Status failed_;
};

}  // namespace pdserve::cluster
