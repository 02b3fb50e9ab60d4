#include "bench/fault_trials.h"

#include <signal.h>

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"

namespace pdserve::bench {

const char* FaultName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kKillPrefill: return "kill-prefill";
    case FaultKind::kKillDecode: return "kill-decode";
    case FaultKind::kStopPrefill: return "stop-prefill";
    case FaultKind::kStopDecode: return "stop-decode";
    case FaultKind::kTermPrefill: return "term-prefill";
    case FaultKind::kTermDecode: return "term-decode";
    case FaultKind::kPrefillTimeout: return "prefill-timeout";
    case FaultKind::kPeerRemoved: return "peer-removed";
  }
  return "?";
}

absl::StatusOr<std::vector<FaultKind>> ParseFaultKinds(const std::string& names) {
  std::vector<FaultKind> kinds;
  for (absl::string_view name : absl::StrSplit(names, ',', absl::SkipEmpty())) {
    bool known = false;
    for (int k = 0; k < kNumFaultKinds; ++k) {
      if (name == FaultName(static_cast<FaultKind>(k))) {
        kinds.push_back(static_cast<FaultKind>(k));
        known = true;
      }
    }
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown fault '", name, "' (kill-prefill, kill-decode, stop-prefill, stop-decode, "
          "term-prefill, term-decode, prefill-timeout, peer-removed)"));
    }
  }
  if (kinds.empty()) {
    for (int k = 0; k < kNumFaultKinds; ++k) kinds.push_back(static_cast<FaultKind>(k));
  }
  return kinds;
}

TrialRunner::TrialRunner(cluster::Cluster& cluster, cluster::Supervisor& supervisor,
                         FaultLoad& load, TrialTimings timings, std::vector<FaultKind> kinds)
    : cluster_(cluster), supervisor_(supervisor), load_(load), timings_(timings),
      kinds_(std::move(kinds)) {
  if (kinds_.empty()) kinds_ = *ParseFaultKinds("");
}

bool FaultOnPrefill(FaultKind kind) {
  return kind == FaultKind::kKillPrefill || kind == FaultKind::kStopPrefill ||
         kind == FaultKind::kTermPrefill || kind == FaultKind::kPrefillTimeout;
}

absl::StatusOr<bool> TrialRunner::WaitFor(const std::function<bool()>& done,
                                          absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    RETURN_IF_ERROR(supervisor_.Poll());
    if (done()) return true;
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

void TrialRunner::NotePids() {
  for (const std::string& name : cluster_.ChildNames()) {
    absl::StatusOr<pid_t> pid = cluster_.Pid(name);
    if (pid.ok() && *pid > 0 &&
        std::find(pids_seen_.begin(), pids_seen_.end(), *pid) == pids_seen_.end()) {
      pids_seen_.push_back(*pid);
    }
  }
}

// Registered with the router as the process that runs now (a restarted worker has registered
// again), live and not draining.
bool TrialRunner::WorkerLive(const std::string& id) {
  absl::StatusOr<v1::ClusterStatus> status = cluster_.GetStatus(absl::Seconds(2));
  absl::StatusOr<pid_t> pid = cluster_.Pid(id);
  if (!status.ok() || !pid.ok()) return false;
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.worker_id() == id) return w.live() && !w.draining() && w.pid() == *pid;
  }
  return false;
}

absl::Status TrialRunner::Signal(const std::string& name, int sig) {
  absl::Status sent = cluster_.Kill(name, sig);
  if (sent.ok()) return sent;
  return absl::Status(sent.code(),
                      absl::StrCat("while sending signal ", sig, " to ", name, ": ", sent.message()));
}

absl::StatusOr<TrialResult> TrialRunner::Run(int index) {
  TrialResult t;
  t.index = index;
  const int num_kinds = static_cast<int>(kinds_.size());
  t.kind = kinds_[index % num_kinds];
  const bool prefill = FaultOnPrefill(t.kind);
  const int n = prefill ? cluster_.options().num_prefill : cluster_.options().num_decode;
  t.victim = absl::StrCat(prefill ? "prefill-" : "decode-", (index / num_kinds) % n);
  t.start_ns = MonotonicNanos();
  // A fault on a worker that is not serving (still restarting after an earlier trial) would
  // measure nothing: wait for it, and record when it did not come.
  ASSIGN_OR_RETURN(t.victim_ready,
                   WaitFor([&] { return WorkerLive(t.victim); }, timings_.ready_limit));
  ASSIGN_OR_RETURN(t.victim_pid, cluster_.Pid(t.victim));
  if (t.kind == FaultKind::kPeerRemoved) {
    // Long prompts on every stream, then the kill while their KV is on its way.
    load_.Burst(cluster_.options().num_decode * 4);
    absl::SleepFor(absl::Milliseconds(30));
  }
  t.in_flight_at_fault = static_cast<int>(load_.in_flight());
  t.fault_ns = MonotonicNanos();
  switch (t.kind) {
    case FaultKind::kKillPrefill:
    case FaultKind::kKillDecode:
    case FaultKind::kPeerRemoved:
      RETURN_IF_ERROR(Signal(t.victim, SIGKILL));
      break;
    case FaultKind::kTermPrefill:
    case FaultKind::kTermDecode:
      RETURN_IF_ERROR(Signal(t.victim, SIGTERM));
      break;
    case FaultKind::kStopPrefill:
    case FaultKind::kStopDecode:
    case FaultKind::kPrefillTimeout: {
      RETURN_IF_ERROR(Signal(t.victim, SIGSTOP));
      // Whatever happens while it is held, the worker does not stay stopped.
      absl::Cleanup resume = [&] { (void)kill(t.victim_pid, SIGCONT); };
      const absl::Duration hold = t.kind == FaultKind::kPrefillTimeout
                                      ? timings_.prefill_timeout_hold
                                      : timings_.stop_hold;
      RETURN_IF_ERROR(WaitFor([] { return false; }, hold).status());
      break;
    }
  }
  t.fault_end_ns = MonotonicNanos();
  int64_t watch_from = t.fault_end_ns;
  if (t.kind == FaultKind::kTermPrefill || t.kind == FaultKind::kTermDecode) {
    // A draining worker still finishes requests placed on it just before its drain was
    // announced: only a request that starts once its restart runs shows that it serves again.
    ASSIGN_OR_RETURN(const bool restarted, WaitFor(
                                               [&] {
                                                 absl::StatusOr<pid_t> pid = cluster_.Pid(t.victim);
                                                 return pid.ok() && *pid != t.victim_pid;
                                               },
                                               timings_.recovery_limit));
    if (!restarted) {
      t.end_ns = MonotonicNanos();
      return t;
    }
    watch_from = MonotonicNanos();
  }
  load_.Watch(t.victim, watch_from);
  ASSIGN_OR_RETURN(const bool served,
                   WaitFor([&] { return load_.ServedAfter(t.victim) != 0; },
                           timings_.recovery_limit));
  if (served) t.served_again_ns = load_.ServedAfter(t.victim);
  t.end_ns = MonotonicNanos();
  NotePids();
  return t;
}

}  // namespace pdserve::bench
