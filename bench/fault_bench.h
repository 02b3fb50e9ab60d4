#pragma once

// `pdserve bench faults`: issue 16's fault-injection benchmark. Starts a real cluster (router,
// prefill and decode workers as child processes, supervised as `pdserve cluster` supervises
// them), drives steady load with every token verified against the synthetic model, and runs N
// trials, each one fault (fault_trials.h) on one worker. It measures, against the targets:
//   - wrong tokens: 0 (a token that is not the model's, with any status)
//   - every request ended, with its tokens or a clear error (no stream the client gave up on)
//   - failures only on the faulty worker: a failed request's error names a worker that was under
//     a fault while the request ran
//   - the victim (or its restart) serves a verified request again within 5 s of the fault's end
//   - 0 leaked blocks: with the load paused and the cluster settled, every pool is free and the
//     router reserves nothing (checked every `check_every` trials and at the end)
//   - 0 leftover segments: no /dev/shm/pdserve-kv-<pid>-<n> of a dead worker of this cluster
// Writes report.md, results.json and trials.csv to `out_dir`.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "bench/fault_load.h"
#include "bench/fault_trials.h"

namespace pdserve::bench {

struct FaultBenchOptions {
  int trials = 1000;
  std::vector<FaultKind> kinds;  // drawn round-robin; empty: all eight
  std::vector<std::string> transfers = {"local"};  // trials are split evenly among these
  int num_prefill = 2;
  int num_decode = 2;
  uint32_t blocks = 256;                           // per worker pool
  FaultLoadOptions load;
  TrialTimings timings;
  // Router limits the faults are measured against (and the stop faults are sized from).
  int heartbeat_ms = 100;
  int missed_heartbeats = 10;
  double prefill_timeout_s = 0.5;
  double token_timeout_s = 1;
  double transfer_timeout_s = 1;
  double breaker_quarantine_s = 0.5;
  double breaker_max_quarantine_s = 2;
  // The supervisor's restart backoff starts again from 0.5 s after a worker ran this long. The
  // trials kill each worker every few seconds; with `pdserve cluster`'s 30 s every kill would
  // count as a crash loop and the backoff would climb to 10 s.
  double stable_after_s = 2;
  // Decode workers' --allocation-lease-s and --fence-lease-s. Blocks a stopped worker's stale
  // calls reserved, and blocks released while their prefill writer was held by SIGSTOP (which
  // then neither writes nor confirms it stopped), are freed by these leases only: the product's
  // 300 s / 120 s would hold them past every checkpoint. The fence lease must stay longer than
  // the longest time a writer can write late: here the SIGSTOP holds plus a transfer timeout.
  double allocation_lease_s = 10;
  double fence_lease_s = 5;
  int check_every = 100;        // leak / segment checkpoints
  absl::Duration settle_limit = absl::Seconds(30);
  std::string binary;           // pdserve executable; empty: this process's own
  std::string out_dir = "results/faults";
  std::string command;          // the command line, for the report
};

// One look at the cluster with the load paused.
struct Checkpoint {
  std::string transfer;
  int after_trial = 0;          // trials done so far (over all transfers)
  bool settled = false;         // every worker live and every pool free within settle_limit
  double settle_s = 0;
  int64_t leaked_blocks = 0;    // blocks not free + blocks reserved by the router, at the end
  int workers_live = 0;
  int dead_owner_segments = 0;  // /dev/shm/pdserve-kv-<pid>-* whose pid is a dead child of ours
  int live_segments = 0;        // those of the workers running now (for the record)
  std::vector<std::string> leftovers;  // names of dead owners' segments
};

struct TransferRun {
  std::string transfer;
  std::vector<TrialResult> trials;
  std::vector<RequestRecord> requests;
  std::vector<Checkpoint> checkpoints;
  std::vector<std::pair<std::string, int>> restarts;  // per child, from the supervisor
  std::vector<RequestRecord> failed_elsewhere;        // filled by AttributeRequests
  double wall_s = 0;
};

struct FaultBenchResult {
  FaultBenchOptions options;
  std::vector<TransferRun> runs;
  double wall_s = 0;
};

absl::StatusOr<FaultBenchResult> RunFaultBench(const FaultBenchOptions& options);

// Fills each trial's request counts from the run's records (which trial a request belongs to,
// whether a failure named a faulty worker). Exposed for the test.
void AttributeRequests(TransferRun& run);

// The worker ids ("prefill-0", "decode-1") an error message names.
std::vector<std::string> WorkersNamed(const std::string& message);

// report.md, results.json, trials.csv under options.out_dir.
absl::Status WriteFaultReport(const FaultBenchResult& result);

// Totals over every run, against the targets.
struct FaultTotals {
  int trials = 0;
  int64_t requests = 0, verified = 0, clean_errors = 0, wrong = 0, never_ended = 0;
  int64_t failed_elsewhere = 0;
  int recovered = 0, recovered_within_5s = 0, victims_not_ready = 0;
  double recovery_p50_s = 0, recovery_p99_s = 0, recovery_max_s = 0;
  int64_t leaked_blocks = 0;    // the worst checkpoint
  int leftover_segments = 0;    // the worst checkpoint
  int checkpoints = 0, unsettled_checkpoints = 0;
  bool Pass() const;
};
FaultTotals Totals(const FaultBenchResult& result);

}  // namespace pdserve::bench
