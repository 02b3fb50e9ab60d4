#pragma once

// Whether a serving-benchmark cell measured the modelled system or this host: the rules that
// mark a cell "host-bound" and keep it out of the headline. Plain data in, verdict out; the
// numbers come from bench/cell_usage.h (CPU time of the cluster's processes and the load
// generator, engine counters) and from the load generator's schedule.

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace pdserve::bench {

struct ProcessCpu {
  std::string name;  // "router", "prefill-0", "decode-0", "colocated-0", "loadgen"
  double cpu_s = 0;  // user + system CPU time over the cell
};

// Differences of a worker's EngineCounters across the cell.
struct EngineDelta {
  std::string worker;  // "prefill-0", "decode-0", "colocated-0 prefill", "colocated-0 decode"
  bool decode = false;
  uint64_t steps = 0;  // prefill batches or decode steps
  uint64_t overrun_steps = 0;
  uint64_t work_us = 0;
  uint64_t modelled_us = 0;
  uint64_t mock_cpu_us = 0;
  uint64_t overrun_us = 0;
};

// What was measured over one cell (the measured requests only, not the warm-up).
struct CellUsage {
  bool measured = false;  // false: nothing was sampled (e.g. a run from an older folder)
  bool modelled = false;  // roofline compute: every engine step has a modelled time to keep
  double wall_s = 0;
  int allowed_cpus = 0;        // CPUs this process may run on (the cluster inherits them)
  double host_busy_cpus = -1;  // every process on the host, in CPUs (< 0: unknown)
  std::vector<ProcessCpu> processes;
  std::vector<EngineDelta> engines;
};

// From the run's result JSON: how late the load generator sent requests.
struct SendLag {
  double p99_ms = -1;  // < 0: unknown
  double max_ms = -1;
  double mean_gap_ms = 0;  // the schedule's mean inter-arrival gap (0: unknown or infinite rate)
};

struct HostBoundRules {
  double max_process_cores = 0.85;   // (a) any one process, in cores
  double max_our_cpu_share = 0.85;   // (a) cluster + loadgen, share of the allowed CPUs
  double max_host_cpu_share = 0.95;  // (a) every process on the host, share of all CPUs
  // (b) overruns of a worker's steps, added up, as a share of its modelled time in the cell:
  // how much the host stretched the modelled device time. A count of overrunning steps would
  // flag one batch late by 0.2 ms in a cell of nine.
  double max_overrun_share = 0.05;
  // (c) the larger of this and max_p99_send_lag_gap_share x the mean inter-arrival gap: a
  // request sent 8 ms late at 4 req/s (250 ms apart) leaves the offered load as asked.
  double max_p99_send_lag_ms = 5;
  double max_p99_send_lag_gap_share = 0.1;
  double max_send_lag_ms = 50;       // (c)
};

struct HostBoundVerdict {
  bool host_bound = false;
  // Not host-bound by any rule that could be checked, but a rule that applies could not be
  // (nothing sampled; modelled compute without engine counters): not vouched for either.
  bool unverified = false;
  std::vector<std::string> reasons;  // why it is host-bound, one per rule broken
  std::vector<std::string> notes;    // what could not be checked (not reported)
};

HostBoundVerdict JudgeHostBound(const CellUsage& usage, const SendLag& lag,
                                const HostBoundRules& rules = {});

// The rules as one sentence, for the report.
std::string DescribeRules(const HostBoundRules& rules);

// CellUsage <-> report-inputs.json, so that `pdserve bench report` judges a folder again.
nlohmann::json CellUsageToJson(const CellUsage& usage);
CellUsage CellUsageFromJson(const nlohmann::json& j);

}  // namespace pdserve::bench
