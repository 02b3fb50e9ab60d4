#include <cstdio>
#include <memory>

#include "absl/strings/str_split.h"
#include "bench/fault_bench.h"
#include "cli/commands.h"

namespace pdserve::cli {
namespace {

struct FaultBenchFlags {
  bench::FaultBenchOptions options;
  std::string transfer = "local";
  std::string faults;
  double stop_hold_s = 1.5;
  double prefill_timeout_hold_s = 0.8;
  double recovery_limit_s = 15;
};

absl::Status Run(FaultBenchFlags& f) {
  bench::FaultBenchOptions& o = f.options;
  o.transfers = absl::StrSplit(f.transfer == "both" ? "local,ucx" : f.transfer, ',');
  absl::StatusOr<std::vector<bench::FaultKind>> kinds = bench::ParseFaultKinds(f.faults);
  if (!kinds.ok()) return kinds.status();
  o.kinds = *kinds;
  o.timings.stop_hold = absl::Seconds(f.stop_hold_s);
  o.timings.prefill_timeout_hold = absl::Seconds(f.prefill_timeout_hold_s);
  o.timings.recovery_limit = absl::Seconds(f.recovery_limit_s);
  o.command = InvocationLine();
  absl::StatusOr<bench::FaultBenchResult> result = bench::RunFaultBench(o);
  if (!result.ok()) return result.status();
  if (absl::Status s = bench::WriteFaultReport(*result); !s.ok()) return s;
  const bench::FaultTotals t = bench::Totals(*result);
  std::printf("%d trials in %.1f s: %lld requests, %lld verified, %lld clear errors, %lld wrong, "
              "%lld never ended, %lld failed elsewhere; serving again within 5 s in %d of %d "
              "(max %.2f s); leaked blocks %lld, leftover segments %d: %s\nreport: %s/report.md\n",
              t.trials, result->wall_s, static_cast<long long>(t.requests),
              static_cast<long long>(t.verified), static_cast<long long>(t.clean_errors),
              static_cast<long long>(t.wrong), static_cast<long long>(t.never_ended),
              static_cast<long long>(t.failed_elsewhere), t.recovered_within_5s, t.trials,
              t.recovery_max_s, static_cast<long long>(t.leaked_blocks), t.leftover_segments,
              t.Pass() ? "every target met" : "TARGET MISSED", o.out_dir.c_str());
  return absl::OkStatus();
}

void AddFaultBenchCommand(CLI::App& app) {
  CLI::App* bench = GetOrAddSubcommand(app, "bench", "Benchmarks");
  CLI::App* cmd = bench->add_subcommand(
      "faults", "Fault trials (kill -9, SIGSTOP, SIGTERM, prefill timeouts, removed peers) "
                "against a supervised cluster under verified load (issue 16's targets)");
  auto f = std::make_shared<FaultBenchFlags>();
  bench::FaultBenchOptions& o = f->options;
  cmd->add_option("--trials", o.trials)->capture_default_str();
  cmd->add_option("--faults", f->faults,
                  "comma list of fault kinds to draw from (default: all eight), e.g. term-prefill");
  cmd->add_option("--transfer", f->transfer, "local, ucx, both, or a comma list: trials split "
                                             "evenly")
      ->capture_default_str();
  cmd->add_option("--prefill", o.num_prefill)->capture_default_str();
  cmd->add_option("--decode", o.num_decode)->capture_default_str();
  cmd->add_option("--blocks", o.blocks, "KV blocks per worker pool")->capture_default_str();
  cmd->add_option("--streams", o.load.streams, "client threads, one request in flight each")
      ->capture_default_str();
  cmd->add_option("--burst-prompt", o.load.burst_prompt, "prompt tokens in peer-removed bursts")
      ->capture_default_str();
  cmd->add_option("--heartbeat-ms", o.heartbeat_ms)->capture_default_str();
  cmd->add_option("--missed-heartbeats", o.missed_heartbeats)->capture_default_str();
  cmd->add_option("--prefill-timeout-s", o.prefill_timeout_s)->capture_default_str();
  cmd->add_option("--token-timeout-s", o.token_timeout_s)->capture_default_str();
  cmd->add_option("--transfer-timeout-s", o.transfer_timeout_s)->capture_default_str();
  cmd->add_option("--breaker-quarantine-s", o.breaker_quarantine_s)->capture_default_str();
  cmd->add_option("--breaker-max-quarantine-s", o.breaker_max_quarantine_s)
      ->capture_default_str();
  cmd->add_option("--stop-hold-s", f->stop_hold_s,
                  "stop-*: SIGSTOP held this long (past the router's limits)")
      ->capture_default_str();
  cmd->add_option("--prefill-timeout-hold-s", f->prefill_timeout_hold_s,
                  "prefill-timeout: SIGSTOP held this long (past --prefill-timeout-s, within the "
                  "heartbeat limit)")
      ->capture_default_str();
  cmd->add_option("--recovery-limit-s", f->recovery_limit_s,
                  "a victim not serving again by then counts as not recovered")
      ->capture_default_str();
  cmd->add_option("--stable-after-s", o.stable_after_s,
                  "supervisor: uptime after which the restart backoff starts again at 0.5 s")
      ->capture_default_str();
  cmd->add_option("--allocation-lease-s", o.allocation_lease_s, "decode workers' flag")
      ->capture_default_str();
  cmd->add_option("--fence-lease-s", o.fence_lease_s,
                  "decode workers' flag: longer than the longest SIGSTOP plus the transfer timeout")
      ->capture_default_str();
  cmd->add_option("--check-every", o.check_every, "trials between leak / segment checkpoints")
      ->capture_default_str();
  cmd->add_option("--seed", o.load.seed)->capture_default_str();
  cmd->add_option("--binary", o.binary, "pdserve executable for the cluster (default: this one)");
  cmd->add_option("--out", o.out_dir, "report.md, results.json, trials.csv and logs go here")
      ->capture_default_str();
  cmd->callback([f] { ExitWith(Run(*f)); });
}

const bool registered = RegisterCommand("bench faults", AddFaultBenchCommand);

}  // namespace
}  // namespace pdserve::cli
