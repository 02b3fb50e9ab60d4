#include "bench/fault_bench.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/status_macros.h"

namespace pdserve::bench {
namespace {

cluster::ClusterOptions ClusterOptionsFor(const FaultBenchOptions& o, const std::string& transfer,
                                          const std::string& log_dir) {
  cluster::ClusterOptions c;
  c.binary = o.binary;
  c.transfer = transfer;
  c.num_prefill = o.num_prefill;
  c.num_decode = o.num_decode;
  c.prefill_blocks = o.blocks;
  c.decode_blocks = o.blocks;
  c.threads = 1;
  c.log_dir = log_dir;
  // Freed decode blocks are poisoned: a request that reads blocks it no longer owns fails
  // verification instead of passing on stale KV of the same prefix.
  c.decode_args = {"--poison-freed-kv", "--allocation-lease-s", absl::StrCat(o.allocation_lease_s),
                   "--fence-lease-s", absl::StrCat(o.fence_lease_s)};
  c.router_args = {"--heartbeat-ms",          absl::StrCat(o.heartbeat_ms),
                   "--missed-heartbeats",     absl::StrCat(o.missed_heartbeats),
                   "--prefill-timeout-s",     absl::StrCat(o.prefill_timeout_s),
                   "--token-timeout-s",       absl::StrCat(o.token_timeout_s),
                   "--transfer-timeout-s",    absl::StrCat(o.transfer_timeout_s),
                   "--breaker-quarantine-s",  absl::StrCat(o.breaker_quarantine_s),
                   "--breaker-max-quarantine-s", absl::StrCat(o.breaker_max_quarantine_s)};
  c.drain_grace = absl::Seconds(5);
  c.ready_timeout = absl::Seconds(60);
  // UCX picks among these on one host; there are no RDMA devices.
  c.env = {{"UCX_TLS", "tcp,posix,cma"}};
  return c;
}

// Every worker registered as the process that runs now, live, not draining, every pool free,
// nothing reserved, nothing queued or running.
bool Settled(cluster::Cluster& cluster, int64_t* leaked, int* live) {
  absl::StatusOr<v1::ClusterStatus> status = cluster.GetStatus(absl::Seconds(2));
  if (!status.ok()) return false;
  *leaked = 0;
  *live = 0;
  for (const v1::WorkerStatus& w : status->workers()) {
    absl::StatusOr<pid_t> pid = cluster.Pid(w.worker_id());
    if (w.live() && !w.draining() && pid.ok() && w.pid() == *pid) ++*live;
    *leaked += static_cast<int64_t>(w.capacity().total_blocks()) -
               static_cast<int64_t>(w.capacity().free_blocks()) + w.reserved_blocks();
  }
  const int workers = cluster.options().num_prefill + cluster.options().num_decode;
  return *live == workers && *leaked == 0 && status->running_requests() == 0 &&
         status->waiting_requests() == 0;
}

// KV pool segments (/dev/shm, SysV) that belong to processes this cluster started.
void CountSegments(cluster::Cluster& cluster, const std::vector<pid_t>& ours, Checkpoint& c) {
  std::set<pid_t> running;
  for (const std::string& name : cluster.ChildNames()) {
    if (absl::StatusOr<pid_t> pid = cluster.Pid(name); pid.ok()) running.insert(*pid);
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string name = entry.path().filename().string();
    constexpr std::string_view kPrefix = "pdserve-kv-";
    if (!name.starts_with(kPrefix)) continue;
    std::vector<std::string> parts = absl::StrSplit(name.substr(kPrefix.size()), '-');
    int pid = 0;
    if (parts.empty() || !absl::SimpleAtoi(parts[0], &pid)) continue;
    if (std::find(ours.begin(), ours.end(), pid) == ours.end()) continue;  // another cluster's
    if (running.contains(pid)) {
      c.live_segments++;
    } else {
      c.dead_owner_segments++;
      c.leftovers.push_back(name);
    }
  }
  // UCX may put registered memory in SysV segments: those a dead process of ours created and
  // nobody holds any more are leftovers too.
  std::ifstream sysv("/proc/sysvipc/shm");
  std::string line;
  std::getline(sysv, line);  // header
  while (std::getline(sysv, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int shmid = 0, cpid = 0, nattch = 0;
    if (f.size() < 7 || !absl::SimpleAtoi(f[1], &shmid) || !absl::SimpleAtoi(f[4], &cpid) ||
        !absl::SimpleAtoi(f[6], &nattch)) {
      continue;
    }
    if (std::find(ours.begin(), ours.end(), cpid) == ours.end()) continue;
    if (running.contains(cpid)) {
      c.live_segments++;
    } else if (nattch == 0) {
      c.dead_owner_segments++;
      c.leftovers.push_back(absl::StrCat("sysv-", shmid));
    }
  }
}

absl::StatusOr<Checkpoint> Check(cluster::Cluster& cluster, TrialRunner& runner, FaultLoad& load,
                                 const std::string& transfer, int after_trial,
                                 absl::Duration settle_limit) {
  Checkpoint c;
  c.transfer = transfer;
  c.after_trial = after_trial;
  load.Pause();
  const int64_t begin = MonotonicNanos();
  // A request ends within the router's limits; the client's own deadline bounds the rest.
  load.WaitIdle(absl::Seconds(90));
  ASSIGN_OR_RETURN(c.settled,
                   runner.WaitFor([&] { return Settled(cluster, &c.leaked_blocks, &c.workers_live); },
                                  settle_limit));
  c.settle_s = (MonotonicNanos() - begin) / 1e9;
  runner.NotePids();
  CountSegments(cluster, runner.pids_seen(), c);
  load.Resume();
  absl::SleepFor(absl::Milliseconds(100));  // the next fault meets requests in flight again
  std::printf("checkpoint after %d trials (%s): %s in %.1f s, %lld blocks not free, %d workers "
              "live, %d dead owners' segments, %d live segments\n",
              after_trial, transfer.c_str(), c.settled ? "settled" : "NOT settled", c.settle_s,
              static_cast<long long>(c.leaked_blocks), c.workers_live, c.dead_owner_segments,
              c.live_segments);
  std::fflush(stdout);
  return c;
}

absl::StatusOr<TransferRun> RunTransfer(const FaultBenchOptions& o, const std::string& transfer,
                                        int first_index, int trials) {
  TransferRun run;
  run.transfer = transfer;
  const int64_t begin = MonotonicNanos();
  ASSIGN_OR_RETURN(std::unique_ptr<cluster::Cluster> cluster,
                   cluster::Cluster::Start(
                       ClusterOptionsFor(o, transfer, absl::StrCat(o.out_dir, "/logs-", transfer))));
  cluster::RestartPolicyOptions policy;
  policy.stable_after = absl::Seconds(o.stable_after_s);
  cluster::Supervisor supervisor(*cluster, policy);
  FaultLoad load(cluster->endpoint(), cluster->model(), o.load);
  TrialRunner runner(*cluster, supervisor, load, o.timings, o.kinds);
  runner.NotePids();
  load.Start();
  ASSIGN_OR_RETURN(Checkpoint first,
                   Check(*cluster, runner, load, transfer, first_index, o.settle_limit));
  run.checkpoints.push_back(first);
  for (int k = 0; k < trials; ++k) {
    ASSIGN_OR_RETURN(TrialResult t, runner.Run(k));
    t.index = first_index + k;
    std::printf("trial %d %s %s %-15s %s: %d in flight, served again after %.2f s\n", t.index,
                transfer.c_str(), t.victim.c_str(), FaultName(t.kind),
                t.victim_ready ? "ready" : "NOT READY", t.in_flight_at_fault, t.RecoverySeconds());
    std::fflush(stdout);
    run.trials.push_back(t);
    if ((k + 1) % o.check_every == 0 || k + 1 == trials) {
      ASSIGN_OR_RETURN(Checkpoint c, Check(*cluster, runner, load, transfer, first_index + k + 1,
                                           o.settle_limit));
      run.checkpoints.push_back(c);
    }
  }
  load.Stop();
  run.requests = load.Records();
  for (const std::string& name : cluster->ChildNames()) {
    run.restarts.emplace_back(name, supervisor.restarts(name));
  }
  cluster->Stop();
  AttributeRequests(run);
  run.wall_s = (MonotonicNanos() - begin) / 1e9;
  return run;
}

}  // namespace

std::vector<std::string> WorkersNamed(const std::string& message) {
  static const std::regex kWorker(R"(\b(prefill|decode)-[0-9]+\b)");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(message.begin(), message.end(), kWorker);
       it != std::sregex_iterator(); ++it) {
    out.push_back(it->str());
  }
  return out;
}

void AttributeRequests(TransferRun& run) {
  std::vector<TrialResult>& trials = run.trials;
  for (const RequestRecord& r : run.requests) {
    // The trial during which the request ended; those that ended before the first are warm-up.
    auto after = std::upper_bound(trials.begin(), trials.end(), r.end_ns,
                                  [](int64_t ns, const TrialResult& t) { return ns < t.start_ns; });
    if (after == trials.begin()) continue;
    TrialResult& t = *std::prev(after);
    switch (r.verdict) {
      case Verdict::kVerified: t.verified++; continue;
      case Verdict::kWrongTokens: t.wrong++; continue;
      case Verdict::kCleanError: t.clean_errors++; break;
      case Verdict::kNeverEnded: t.never_ended++; break;
    }
    // A failure is the fault's when its error names a worker that was under a fault (from the
    // signal until it served again) at some point while the request ran.
    bool on_victim = false;
    for (const std::string& named : WorkersNamed(r.message)) {
      for (const TrialResult& f : trials) {
        const int64_t fault_end = f.served_again_ns != 0 ? f.served_again_ns : f.end_ns;
        if (f.victim == named && f.fault_ns <= r.end_ns && fault_end >= r.start_ns) {
          on_victim = true;
        }
      }
    }
    if (!on_victim) {
      t.failed_elsewhere++;
      run.failed_elsewhere.push_back(r);
    }
  }
}

absl::StatusOr<FaultBenchResult> RunFaultBench(const FaultBenchOptions& options) {
  const double longest_hold =
      absl::ToDoubleSeconds(std::max(options.timings.stop_hold, options.timings.prefill_timeout_hold));
  if (options.fence_lease_s <= longest_hold + options.transfer_timeout_s) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--fence-lease-s ", options.fence_lease_s, " must exceed the longest SIGSTOP (",
        longest_hold, " s) plus --transfer-timeout-s: a held writer may write that late"));
  }
  if (options.trials < 1 || options.transfers.empty() || options.num_prefill < 1 ||
      options.num_decode < 1 || options.check_every < 1) {
    return absl::InvalidArgumentError(
        "need --trials >= 1, a --transfer, >= 1 prefill and decode worker, --check-every >= 1");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", options.out_dir, ": ",
                                                  ec.message()));
  FaultBenchResult result;
  result.options = options;
  const int64_t begin = MonotonicNanos();
  const int n = static_cast<int>(options.transfers.size());
  int done = 0;
  for (int i = 0; i < n; ++i) {
    const int trials = options.trials / n + (i < options.trials % n ? 1 : 0);
    ASSIGN_OR_RETURN(TransferRun run, RunTransfer(options, options.transfers[i], done, trials));
    done += trials;
    result.runs.push_back(std::move(run));
  }
  result.wall_s = (MonotonicNanos() - begin) / 1e9;
  return result;
}

bool FaultTotals::Pass() const {
  return wrong == 0 && never_ended == 0 && failed_elsewhere == 0 && victims_not_ready == 0 &&
         recovered_within_5s == trials && leaked_blocks == 0 && leftover_segments == 0 &&
         unsettled_checkpoints == 0;
}

FaultTotals Totals(const FaultBenchResult& result) {
  FaultTotals t;
  std::vector<double> recovery;
  for (const TransferRun& run : result.runs) {
    for (const RequestRecord& r : run.requests) {
      t.requests++;
      t.verified += r.verdict == Verdict::kVerified;
      t.clean_errors += r.verdict == Verdict::kCleanError;
      t.wrong += r.verdict == Verdict::kWrongTokens;
      t.never_ended += r.verdict == Verdict::kNeverEnded;
    }
    for (const TrialResult& trial : run.trials) {
      t.trials++;
      t.failed_elsewhere += trial.failed_elsewhere;
      t.victims_not_ready += trial.victim_ready ? 0 : 1;
      const double s = trial.RecoverySeconds();
      if (s < 0) continue;
      recovery.push_back(s);
      t.recovered++;
      t.recovered_within_5s += s <= 5.0;
    }
    for (const Checkpoint& c : run.checkpoints) {
      t.checkpoints++;
      t.unsettled_checkpoints += c.settled ? 0 : 1;
      t.leaked_blocks = std::max(t.leaked_blocks, c.leaked_blocks);
      t.leftover_segments = std::max(t.leftover_segments, c.dead_owner_segments);
    }
  }
  std::sort(recovery.begin(), recovery.end());
  if (!recovery.empty()) {
    auto at = [&](double q) {
      return recovery[std::min(recovery.size() - 1,
                               static_cast<size_t>(q * static_cast<double>(recovery.size())))];
    };
    t.recovery_p50_s = at(0.5);
    t.recovery_p99_s = at(0.99);
    t.recovery_max_s = recovery.back();
  }
  return t;
}

}  // namespace pdserve::bench
