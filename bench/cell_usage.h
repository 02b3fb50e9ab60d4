#pragma once

// Samples what a serving-benchmark cell cost the host: CPU time of every cluster process and of
// this process (which runs the load generator), the engine counters each worker reports
// through the router's GetStatus, and how busy the CPUs this run may use were. Take a probe
// before the measured requests and finish it after them; bench/host_bound.h judges the result.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/host_bound.h"
#include "cluster/cluster.h"

namespace pdserve::bench {

class CellUsageProbe {
 public:
  // Reads the starting point. A process or status that cannot be read is left out (the
  // verdict then says what was not reported), never a reason to fail the cell.
  static CellUsageProbe Start(const cluster::Cluster& cluster);
  // The differences since Start.
  CellUsage Finish(const cluster::Cluster& cluster) const;

 private:
  struct Sample {
    int64_t wall_ns = 0;
    std::map<std::string, std::pair<pid_t, uint64_t>> cpu_ticks;  // name -> (pid, ticks)
    std::map<std::string, EngineDelta> engines;                   // cumulative counters
    uint64_t cpu_busy = 0, cpu_total = 0;                         // allowed CPUs, /proc/stat
  };
  static Sample Take(const cluster::Cluster& cluster);
  Sample start_;
};

// A colocated worker's engines in CellUsage::engines: "colocated-0 prefill" (its prefill
// engine's counters, WorkerStatus.prefill_engine) and "colocated-0 decode" (WorkerStatus.engine).
std::string ColocatedEngineName(const std::string& worker, bool decode);

// utime + stime of `pid` in clock ticks (sysconf(_SC_CLK_TCK) per second); -1 when unreadable.
int64_t ProcessCpuTicks(pid_t pid);

// The CPUs this process may run on (its affinity mask).
std::vector<int> AllowedCpus();

}  // namespace pdserve::bench
