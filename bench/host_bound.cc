#include "bench/host_bound.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace pdserve::bench {

HostBoundVerdict JudgeHostBound(const CellUsage& usage, const SendLag& lag,
                                const HostBoundRules& rules) {
  HostBoundVerdict v;
  auto flag = [&v](std::string reason) {
    v.host_bound = true;
    v.reasons.push_back(std::move(reason));
  };
  if (!usage.measured || usage.wall_s <= 0) {
    v.unverified = true;
    v.notes.push_back("CPU and engine counters not sampled");
  } else {
    // (a) CPU: one process near a whole core cannot keep the modelled schedule, and neither
    // can the host when our processes (or everyone's) fill its CPUs.
    double ours = 0;
    for (const ProcessCpu& p : usage.processes) {
      const double cores = p.cpu_s / usage.wall_s;
      ours += cores;
      if (cores > rules.max_process_cores) {
        flag(absl::StrFormat("%s used %.2f of a core (> %.2f)", p.name, cores,
                             rules.max_process_cores));
      }
    }
    if (usage.allowed_cpus > 0 && ours > rules.max_our_cpu_share * usage.allowed_cpus) {
      flag(absl::StrFormat("cluster + loadgen used %.2f of %d CPUs (> %.0f%%)", ours,
                           usage.allowed_cpus, rules.max_our_cpu_share * 100));
    }
    if (usage.host_busy_cpus >= 0 && usage.allowed_cpus > 0 &&
        usage.host_busy_cpus > rules.max_host_cpu_share * usage.allowed_cpus) {
      flag(absl::StrFormat("host CPUs %.0f%% busy (%.2f of them by other processes)",
                           100 * usage.host_busy_cpus / usage.allowed_cpus,
                           std::max(0.0, usage.host_busy_cpus - ours)));
    }
    // (b) engine steps that lasted longer than their modelled time: the host set the pace.
    bool any_engine = false;
    for (const EngineDelta& e : usage.engines) {
      if (e.steps == 0) continue;
      any_engine = true;
      const double share =
          e.modelled_us > 0 ? static_cast<double>(e.overrun_us) / static_cast<double>(e.modelled_us)
                            : 0.0;
      if (share > rules.max_overrun_share) {
        flag(absl::StrFormat(
            "%s: overruns added %.1f%% to its modelled time (+%.1f ms; %u of %u %s overran)",
            e.worker, share * 100, e.overrun_us / 1e3, e.overrun_steps, e.steps,
            e.decode ? "decode steps" : "prefill batches"));
      }
      if (e.modelled_us == 0) {
        v.notes.push_back(absl::StrFormat("%s reports no modelled time", e.worker));
      }
    }
    if (!any_engine) {
      // With modelled compute, rule (b) is the one that sees the mock's own work outlast the
      // model; without the counters a quiet-looking cell may still be host-bound.
      v.unverified = usage.modelled;
      v.notes.push_back(usage.modelled
                            ? "engine counters not reported: overruns of the modelled time "
                              "not checked"
                            : "engine counters not reported");
    }
  }
  // (c) the load generator behind its schedule: the offered load was not the one asked for.
  if (lag.p99_ms < 0) {
    v.notes.push_back("send lag not reported");
  } else if (const double limit = std::max(rules.max_p99_send_lag_ms,
                                           rules.max_p99_send_lag_gap_share * lag.mean_gap_ms);
             lag.p99_ms > limit) {
    flag(absl::StrFormat("loadgen p99 send lag %.1f ms (> %g)", lag.p99_ms, limit));
  } else if (lag.max_ms > rules.max_send_lag_ms) {
    flag(absl::StrFormat("loadgen max send lag %.1f ms (> %g)", lag.max_ms, rules.max_send_lag_ms));
  }
  return v;
}

std::string DescribeRules(const HostBoundRules& r) {
  return absl::StrFormat(
      "a cell is host-bound when (a) any cluster process (router, each worker) or the load "
      "generator used more than %.2f of a core over the cell (utime + stime from /proc/<pid>/stat "
      "before and after), or all of them together more than %.0f%% of the CPUs this run may use, "
      "or every process on the host (/proc/stat) more than %.0f%% of them; (b) the time by which a "
      "worker's decode steps or prefill batches outlasted their modelled time, added up over the "
      "cell, exceeded %.0f%% of its modelled time (EngineCounters deltas through the router's "
      "GetStatus: the host stretched the modelled device time); (c) the load generator's p99 "
      "send lag (send time - scheduled time) exceeded the larger of %g ms and %.0f%% of the mean "
      "inter-arrival gap, or its maximum %g ms",
      r.max_process_cores, r.max_our_cpu_share * 100, r.max_host_cpu_share * 100,
      r.max_overrun_share * 100, r.max_p99_send_lag_ms, r.max_p99_send_lag_gap_share * 100,
      r.max_send_lag_ms);
}

nlohmann::json CellUsageToJson(const CellUsage& u) {
  nlohmann::json j = {{"measured", u.measured},
                      {"modelled", u.modelled},
                      {"wall_s", u.wall_s},
                      {"allowed_cpus", u.allowed_cpus},
                      {"host_busy_cpus", u.host_busy_cpus},
                      {"processes", nlohmann::json::array()},
                      {"engines", nlohmann::json::array()}};
  for (const ProcessCpu& p : u.processes) {
    j["processes"].push_back({{"name", p.name}, {"cpu_s", p.cpu_s}});
  }
  for (const EngineDelta& e : u.engines) {
    j["engines"].push_back({{"worker", e.worker},
                            {"decode", e.decode},
                            {"steps", e.steps},
                            {"overrun_steps", e.overrun_steps},
                            {"work_us", e.work_us},
                            {"modelled_us", e.modelled_us},
                            {"mock_cpu_us", e.mock_cpu_us},
                            {"overrun_us", e.overrun_us}});
  }
  return j;
}

CellUsage CellUsageFromJson(const nlohmann::json& j) {
  CellUsage u;
  if (!j.is_object()) return u;
  u.measured = j.value("measured", false);
  u.modelled = j.value("modelled", false);
  u.wall_s = j.value("wall_s", 0.0);
  u.allowed_cpus = j.value("allowed_cpus", 0);
  u.host_busy_cpus = j.value("host_busy_cpus", -1.0);
  for (const nlohmann::json& p : j.value("processes", nlohmann::json::array())) {
    u.processes.push_back({p.value("name", ""), p.value("cpu_s", 0.0)});
  }
  for (const nlohmann::json& e : j.value("engines", nlohmann::json::array())) {
    u.engines.push_back({.worker = e.value("worker", ""),
                         .decode = e.value("decode", false),
                         .steps = e.value("steps", uint64_t{0}),
                         .overrun_steps = e.value("overrun_steps", uint64_t{0}),
                         .work_us = e.value("work_us", uint64_t{0}),
                         .modelled_us = e.value("modelled_us", uint64_t{0}),
                         .mock_cpu_us = e.value("mock_cpu_us", uint64_t{0}),
                         .overrun_us = e.value("overrun_us", uint64_t{0})});
  }
  return u;
}

}  // namespace pdserve::bench
