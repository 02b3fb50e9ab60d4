#pragma once

// The faults of `pdserve bench faults` and one trial of each: which signal goes to which worker,
// for how long, and how the cluster came back. A trial is run from the thread that started the
// cluster (signals and restarts go through cluster::Cluster, which one thread owns), with the
// supervisor polled all along so that dead workers are restarted while the trial waits.
//
// The fault kinds, drawn round-robin:
//   kill-prefill / kill-decode   SIGKILL; the supervisor restarts the worker
//   stop-prefill / stop-decode   SIGSTOP held past the router's timeouts and its heartbeat limit
//                                (the worker is dropped), then SIGCONT (it registers again)
//   term-prefill / term-decode   SIGTERM: the worker drains, exits 0, and is restarted
//   prefill-timeout              SIGSTOP of a prefill worker held past --prefill-timeout-s but
//                                within the heartbeat limit: its batches time out, the router
//                                cancels them and frees their decode blocks while the worker
//                                still holds the batch; after SIGCONT its late KV writes must be
//                                fenced off (issue 16's wrong tokens)
//   peer-removed                 a burst of long prompts, then SIGKILL of a decode worker while
//                                their KV is in transfer to it: the router drops it and removes
//                                it as a transfer peer from every prefill worker (RemovePeer)
//                                with transfers in flight

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "bench/fault_load.h"
#include "cluster/cluster.h"
#include "cluster/supervisor.h"

namespace pdserve::bench {

enum class FaultKind {
  kKillPrefill,
  kKillDecode,
  kStopPrefill,
  kStopDecode,
  kTermPrefill,
  kTermDecode,
  kPrefillTimeout,
  kPeerRemoved,
};
inline constexpr int kNumFaultKinds = 8;
const char* FaultName(FaultKind kind);
bool FaultOnPrefill(FaultKind kind);
// "kill-prefill,term-decode" (FaultName's names) -> kinds; empty -> all eight.
absl::StatusOr<std::vector<FaultKind>> ParseFaultKinds(const std::string& names);

struct TrialTimings {
  absl::Duration stop_hold = absl::Milliseconds(1500);           // stop-*: past every limit
  absl::Duration prefill_timeout_hold = absl::Milliseconds(800);  // prefill-timeout
  absl::Duration recovery_limit = absl::Seconds(15);  // a victim not serving by then: failed
  absl::Duration ready_limit = absl::Seconds(15);     // wait for the victim before a fault
};

struct TrialResult {
  int index = 0;
  FaultKind kind = FaultKind::kKillPrefill;
  std::string victim;
  pid_t victim_pid = -1;
  int64_t start_ns = 0;       // the trial began (monotonic)
  int64_t fault_ns = 0;       // the signal went out
  int64_t fault_end_ns = 0;   // SIGCONT, or = fault_ns for kill/term
  int64_t end_ns = 0;         // the trial ended (the victim served again, or the limit)
  int64_t served_again_ns = 0;  // 0: not within recovery_limit
  bool victim_ready = true;   // the victim was registered and live when the fault went out
  int in_flight_at_fault = 0;
  // Filled by the analysis (fault_bench.cc) from the load's records.
  int verified = 0, clean_errors = 0, wrong = 0, never_ended = 0;
  int failed_elsewhere = 0;   // failed requests that did not name a faulty worker
  double RecoverySeconds() const {
    return served_again_ns == 0 ? -1 : (served_again_ns - fault_end_ns) / 1e9;
  }
};

class TrialRunner {
 public:
  // `kinds` empty: all eight.
  TrialRunner(cluster::Cluster& cluster, cluster::Supervisor& supervisor, FaultLoad& load,
              TrialTimings timings, std::vector<FaultKind> kinds = {});

  // Trial `index`: kind kinds[index % kinds.size()], victim rotating among that role's workers.
  absl::StatusOr<TrialResult> Run(int index);

  // Polls the supervisor every 20 ms until `done` or `timeout`; false on timeout. Error when
  // supervision ended (the router could not be kept up).
  absl::StatusOr<bool> WaitFor(const std::function<bool()>& done, absl::Duration timeout);

  // Every pid any child of the cluster had so far (segments of those pids are ours).
  const std::vector<pid_t>& pids_seen() const { return pids_seen_; }
  void NotePids();

 private:
  bool WorkerLive(const std::string& id);
  absl::Status Signal(const std::string& name, int sig);

  cluster::Cluster& cluster_;
  cluster::Supervisor& supervisor_;
  FaultLoad& load_;
  TrialTimings timings_;
  std::vector<FaultKind> kinds_;
  std::vector<pid_t> pids_seen_;
};

}  // namespace pdserve::bench
