#include "bench/cell_usage.h"

#include <sched.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "common/clock.h"

namespace pdserve::bench {
namespace {

// Busy and total jiffies of the allowed CPUs ("cpuN" lines of /proc/stat). Busy excludes idle
// and iowait; guest time is already inside user time, so it is not added twice.
void ReadCpuJiffies(const std::set<int>& cpus, uint64_t* busy, uint64_t* total) {
  *busy = *total = 0;
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    int cpu = -1;
    if (line.rfind("cpu", 0) != 0 || std::sscanf(line.c_str(), "cpu%d", &cpu) != 1 ||
        cpus.count(cpu) == 0) {
      continue;
    }
    std::istringstream fields(line.substr(line.find(' ')));
    uint64_t v[8] = {};
    for (uint64_t& x : v) fields >> x;
    const uint64_t all = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    *total += all;
    *busy += all - v[3] - v[4];
  }
}

EngineDelta EngineTotals(const std::string& name, bool decode, const v1::EngineCounters& e) {
  return {.worker = name,
          .decode = decode,
          .steps = e.steps(),
          .overrun_steps = e.overrun_steps(),
          .work_us = e.work_us(),
          .modelled_us = e.modelled_us(),
          .mock_cpu_us = e.mock_cpu_us(),
          .overrun_us = e.overrun_us()};
}

}  // namespace

std::string ColocatedEngineName(const std::string& worker, bool decode) {
  return worker + (decode ? " decode" : " prefill");
}

int64_t ProcessCpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return -1;
  // The command name may hold spaces and parentheses: fields count from the last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  // After the name: state(3) ... utime is field 14, stime 15 of the whole line.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  if (!fields) return -1;
  return static_cast<int64_t>(utime + stime);
}

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

CellUsageProbe::Sample CellUsageProbe::Take(const cluster::Cluster& cluster) {
  Sample s;
  s.wall_ns = MonotonicNanos();
  std::vector<std::pair<std::string, pid_t>> pids = {{"loadgen", getpid()}};
  for (const std::string& name : cluster.ChildNames()) {
    if (absl::StatusOr<pid_t> pid = cluster.Pid(name); pid.ok()) pids.push_back({name, *pid});
  }
  for (const auto& [name, pid] : pids) {
    if (const int64_t ticks = ProcessCpuTicks(pid); ticks >= 0) {
      s.cpu_ticks[name] = {pid, static_cast<uint64_t>(ticks)};
    }
  }
  if (absl::StatusOr<v1::ClusterStatus> status = cluster.GetStatus(); status.ok()) {
    for (const v1::WorkerStatus& w : status->workers()) {
      if (!w.live()) continue;  // a heartbeat's capacity has no counters
      if (w.role() == v1::WORKER_ROLE_COLOCATED) {
        // Two engines in one worker: its prefill batches are judged as a prefill worker's and
        // its decode steps as a decode worker's, each against its own modelled time.
        const std::string prefill = ColocatedEngineName(w.worker_id(), false);
        const std::string decode = ColocatedEngineName(w.worker_id(), true);
        s.engines[prefill] = EngineTotals(prefill, false, w.prefill_engine());
        s.engines[decode] = EngineTotals(decode, true, w.engine());
      } else {
        s.engines[w.worker_id()] =
            EngineTotals(w.worker_id(), w.role() == v1::WORKER_ROLE_DECODE, w.engine());
      }
    }
  }
  const std::vector<int> allowed = AllowedCpus();
  ReadCpuJiffies(std::set<int>(allowed.begin(), allowed.end()), &s.cpu_busy, &s.cpu_total);
  return s;
}

CellUsageProbe CellUsageProbe::Start(const cluster::Cluster& cluster) {
  CellUsageProbe probe;
  probe.start_ = Take(cluster);
  return probe;
}

CellUsage CellUsageProbe::Finish(const cluster::Cluster& cluster) const {
  const Sample end = Take(cluster);
  CellUsage u;
  u.measured = true;
  u.wall_s = static_cast<double>(end.wall_ns - start_.wall_ns) / 1e9;
  u.allowed_cpus = static_cast<int>(AllowedCpus().size());
  const double ticks_per_s = static_cast<double>(sysconf(_SC_CLK_TCK));
  for (const auto& [name, at_end] : end.cpu_ticks) {
    auto it = start_.cpu_ticks.find(name);
    // A restarted process (other pid) has no difference to take.
    if (it == start_.cpu_ticks.end() || it->second.first != at_end.first) continue;
    u.processes.push_back(
        {name, static_cast<double>(at_end.second - it->second.second) / ticks_per_s});
  }
  for (const auto& [worker, e] : end.engines) {
    auto it = start_.engines.find(worker);
    if (it == start_.engines.end() || e.steps < it->second.steps) continue;
    const EngineDelta& b = it->second;
    u.engines.push_back({.worker = worker,
                         .decode = e.decode,
                         .steps = e.steps - b.steps,
                         .overrun_steps = e.overrun_steps - b.overrun_steps,
                         .work_us = e.work_us - b.work_us,
                         .modelled_us = e.modelled_us - b.modelled_us,
                         .mock_cpu_us = e.mock_cpu_us - b.mock_cpu_us,
                         .overrun_us = e.overrun_us - b.overrun_us});
  }
  if (end.cpu_total > start_.cpu_total && u.allowed_cpus > 0) {
    u.host_busy_cpus = static_cast<double>(end.cpu_busy - start_.cpu_busy) /
                       static_cast<double>(end.cpu_total - start_.cpu_total) * u.allowed_cpus;
  }
  return u;
}

}  // namespace pdserve::bench
