#include "cluster/supervisor.h"

#include <sys/wait.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace pdserve::cluster {

absl::Duration RestartBackoff::OnExit(absl::Duration uptime, bool clean) {
  if (clean) return options_.initial_backoff;
  if (uptime >= options_.stable_after || quick_deaths_ == 0) {
    quick_deaths_ = 0;
    next_ = options_.initial_backoff;
  } else {
    next_ = std::min(next_ * 2, options_.max_backoff);
  }
  quick_deaths_++;
  return next_;
}

Supervisor::Supervisor(Cluster& cluster, RestartPolicyOptions options)
    : cluster_(cluster), options_(options) {}

Supervisor::ChildState& Supervisor::State(const std::string& name) {
  return children_.try_emplace(name, options_).first->second;
}

int Supervisor::restarts(const std::string& name) const {
  auto it = children_.find(name);
  return it == children_.end() ? 0 : it->second.restarts;
}

absl::Status Supervisor::Poll(absl::Time now) {
  if (!failed_.ok()) return failed_;
  auto log = ComponentLogger("cluster");
  for (const ChildExit& exit : cluster_.CollectExits()) {
    ChildState& state = State(exit.name);
    const bool clean = WIFEXITED(exit.wait_status) && WEXITSTATUS(exit.wait_status) == 0;
    const absl::Duration delay = state.backoff.OnExit(exit.uptime, clean);
    if (exit.name == "router" && state.backoff.quick_deaths() > options_.max_router_restarts) {
      failed_ = absl::UnavailableError(absl::StrCat(
          "the router cannot be kept up: it died ", state.backoff.quick_deaths(),
          " times in a row, last as pid ", exit.pid, " (", DescribeWaitStatus(exit.wait_status),
          " after ", absl::FormatDuration(exit.uptime), "); see ", exit.log_path));
      log->error("{}", std::string(failed_.message()));
      return failed_;
    }
    log->warn("{} (pid {}) {} after {}; restarting it in {} (restart {})", exit.name, exit.pid,
              DescribeWaitStatus(exit.wait_status), absl::FormatDuration(exit.uptime),
              absl::FormatDuration(delay), state.restarts + 1);
    state.pending = true;
    state.restart_at = now + delay;
  }
  for (auto& [name, state] : children_) {
    if (!state.pending || now < state.restart_at) continue;
    state.pending = false;
    state.restarts++;
    if (absl::Status restarted = cluster_.Restart(name); !restarted.ok()) {
      // Counts as a death at once: the backoff grows, and a router that cannot start ends it.
      log->error("restarting {} failed: {}", name, restarted.ToString());
      const absl::Duration delay = state.backoff.OnExit(absl::ZeroDuration());
      state.pending = true;
      state.restart_at = now + delay;
      continue;
    }
    absl::StatusOr<pid_t> pid = cluster_.Pid(name);
    log->info("{} restarted (pid {}, restart {})", name, pid.ok() ? *pid : -1, state.restarts);
  }
  return absl::OkStatus();
}

}  // namespace pdserve::cluster
