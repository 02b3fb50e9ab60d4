// report.md, results.json and trials.csv of `pdserve bench faults`.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/fault_bench.h"
#include "nlohmann/json.hpp"

namespace pdserve::bench {
namespace {

const char* PassFail(bool ok) { return ok ? "pass" : "**FAIL**"; }

struct KindRow {
  int trials = 0, in_flight = 0, verified = 0, clean_errors = 0, wrong = 0, never_ended = 0;
  int failed_elsewhere = 0, not_recovered = 0, over_5s = 0;
  std::vector<double> recovery;
};

std::string Seconds(std::vector<double> v, double q) {
  if (v.empty()) return "-";
  std::sort(v.begin(), v.end());
  return absl::StrFormat(
      "%.2f", v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]);
}

std::string KindTable(const FaultBenchResult& result) {
  std::map<std::string, KindRow> rows;  // "transfer kind"
  for (const TransferRun& run : result.runs) {
    for (const TrialResult& t : run.trials) {
      KindRow& r = rows[absl::StrCat(run.transfer, " | ", FaultName(t.kind))];
      r.trials++;
      r.in_flight += t.in_flight_at_fault;
      r.verified += t.verified;
      r.clean_errors += t.clean_errors;
      r.wrong += t.wrong;
      r.never_ended += t.never_ended;
      r.failed_elsewhere += t.failed_elsewhere;
      const double s = t.RecoverySeconds();
      if (s < 0) {
        r.not_recovered++;
      } else {
        r.recovery.push_back(s);
        r.over_5s += s > 5.0;
      }
    }
  }
  std::string out =
      "| transfer | fault | trials | in flight at fault | verified | clear errors | wrong tokens "
      "| never ended | failed elsewhere | serving again p50 / p99 / max (s) | > 5 s | not again "
      "|\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n";
  for (const auto& [key, r] : rows) {
    absl::StrAppend(&out, "| ", key, " | ", r.trials, " | ", r.in_flight, " | ", r.verified,
                    " | ", r.clean_errors, " | ", r.wrong, " | ", r.never_ended, " | ",
                    r.failed_elsewhere, " | ", Seconds(r.recovery, 0.5), " / ",
                    Seconds(r.recovery, 0.99), " / ", Seconds(r.recovery, 1.0), " | ", r.over_5s,
                    " | ", r.not_recovered, " |\n");
  }
  return out;
}

std::string Markdown(const FaultBenchResult& result, const FaultTotals& t) {
  const FaultBenchOptions& o = result.options;
  std::string md = "# pdserve bench faults\n\n";
  absl::StrAppend(&md, "```\n", o.command, "\n```\n\n");
  absl::StrAppend(
      &md, "- trials: ", t.trials, " over transfer ", absl::StrJoin(o.transfers, ", "), "; ",
      o.num_prefill, " prefill + ", o.num_decode, " decode workers, tiny preset, ", o.blocks,
      " blocks per pool, decode --poison-freed-kv\n",
      "- load: ", o.load.streams, " streams, one request in flight each, prompt ",
      o.load.min_prompt, "-", o.load.max_prompt, " tokens (", o.load.burst_prompt,
      " in peer-removed bursts), ", o.load.min_tokens, "-", o.load.max_tokens,
      " output tokens, every token verified\n",
      "- router: heartbeat ", o.heartbeat_ms, " ms x ", o.missed_heartbeats,
      " missed, prefill timeout ", o.prefill_timeout_s, " s, token timeout ", o.token_timeout_s,
      " s, transfer timeout ", o.transfer_timeout_s, " s, breaker quarantine ",
      o.breaker_quarantine_s, "-", o.breaker_max_quarantine_s, " s\n",
      "- faults: SIGSTOP held ", absl::FormatDuration(o.timings.stop_hold),
      " (stop-*), ", absl::FormatDuration(o.timings.prefill_timeout_hold),
      " (prefill-timeout); supervisor backoff 0.5 s -> 10 s, reset after ", o.stable_after_s,
      " s of uptime\n",
      "- decode workers: --allocation-lease-s ", o.allocation_lease_s, ", --fence-lease-s ",
      o.fence_lease_s, " (the product's defaults are 300 / 120 s)\n",
      absl::StrFormat("- wall time: %.1f s (%.2f s per trial)\n\n", result.wall_s,
                      result.wall_s / std::max(1, t.trials)));
  md += "## Targets\n\n| target | measured | |\n|---|---|---|\n";
  absl::StrAppend(&md, "| 0 wrong tokens | ", t.wrong, " of ", t.requests, " requests | ",
                  PassFail(t.wrong == 0), " |\n");
  absl::StrAppend(&md, "| 100% ended with tokens or a clear error | ", t.verified,
                  " verified + ", t.clean_errors, " clear errors, ", t.never_ended,
                  " never ended | ", PassFail(t.never_ended == 0), " |\n");
  absl::StrAppend(&md, "| failures only on the faulty worker | ", t.failed_elsewhere,
                  " of ", t.clean_errors + t.never_ended,
                  " failed requests named no worker under a fault | ",
                  PassFail(t.failed_elsewhere == 0), " |\n");
  absl::StrAppend(&md,
                  absl::StrFormat("| victim serving again within 5 s | %d of %d trials (p50 "
                                  "%.2f s, p99 %.2f s, max %.2f s; %d never, %d victims not "
                                  "ready before the fault) | %s |\n",
                                  t.recovered_within_5s, t.trials, t.recovery_p50_s,
                                  t.recovery_p99_s, t.recovery_max_s, t.trials - t.recovered,
                                  t.victims_not_ready,
                                  PassFail(t.recovered_within_5s == t.trials &&
                                           t.victims_not_ready == 0)));
  absl::StrAppend(&md, "| 0 leaked blocks | worst of ", t.checkpoints, " checkpoints: ",
                  t.leaked_blocks, " (", t.unsettled_checkpoints, " did not settle) | ",
                  PassFail(t.leaked_blocks == 0 && t.unsettled_checkpoints == 0), " |\n");
  absl::StrAppend(&md, "| 0 leftover segments | worst checkpoint: ", t.leftover_segments,
                  " | ", PassFail(t.leftover_segments == 0), " |\n\n");
  absl::StrAppend(&md, "Overall: ", t.Pass() ? "every target met" : "**a target was missed**",
                  "\n\n## Per fault kind\n\n", KindTable(result), "\n");
  md += "## Checkpoints (load paused, cluster settled)\n\n| transfer | after trial | settled | "
        "settle (s) | blocks not free | workers live | dead owners' segments | live segments "
        "|\n|---|---:|---|---:|---:|---:|---:|---:|\n";
  for (const TransferRun& run : result.runs) {
    for (const Checkpoint& c : run.checkpoints) {
      absl::StrAppend(&md, absl::StrFormat("| %s | %d | %s | %.1f | %d | %d | %d | %d |\n",
                                           c.transfer, c.after_trial, c.settled ? "yes" : "no",
                                           c.settle_s, c.leaked_blocks, c.workers_live,
                                           c.dead_owner_segments, c.live_segments));
    }
  }
  md += "\n## Restarts (supervisor)\n\n";
  for (const TransferRun& run : result.runs) {
    std::vector<std::string> parts;
    for (const auto& [name, n] : run.restarts) parts.push_back(absl::StrCat(name, " ", n));
    absl::StrAppend(&md, "- ", run.transfer, absl::StrFormat(" (%.1f s): ", run.wall_s),
                    absl::StrJoin(parts, ", "), "\n");
  }
  // The failures that count against a target, for whoever reads the report next.
  md += "\n## Requests against a target (first 30)\n\n";
  int listed = 0;
  for (const TransferRun& run : result.runs) {
    for (const RequestRecord& r : run.requests) {
      if (r.verdict == Verdict::kVerified || r.verdict == Verdict::kCleanError) continue;
      if (listed++ >= 30) break;
      absl::StrAppend(&md, "- ", run.transfer, " ", r.id, ": ", VerdictName(r.verdict),
                      ", status ", r.status_code, ", ", r.tokens, " tokens, ", r.message, "\n");
    }
  }
  if (listed == 0) md += "none\n";
  md += "\n## Failures that named no worker under a fault (first 30)\n\n";
  listed = 0;
  for (const TransferRun& run : result.runs) {
    for (const RequestRecord& r : run.failed_elsewhere) {
      if (listed++ >= 30) break;
      absl::StrAppend(&md, "- ", run.transfer, " ", r.id, ": status ", r.status_code, ", ",
                      r.tokens, " tokens, ", r.message, "\n");
    }
  }
  if (listed == 0) md += "none\n";
  return md;
}

nlohmann::json Json(const FaultBenchResult& result, const FaultTotals& t) {
  nlohmann::json j;
  j["command"] = result.options.command;
  j["wall_s"] = result.wall_s;
  j["pass"] = t.Pass();
  j["totals"] = {{"trials", t.trials},
                 {"requests", t.requests},
                 {"verified", t.verified},
                 {"clean_errors", t.clean_errors},
                 {"wrong_tokens", t.wrong},
                 {"never_ended", t.never_ended},
                 {"failed_elsewhere", t.failed_elsewhere},
                 {"recovered", t.recovered},
                 {"recovered_within_5s", t.recovered_within_5s},
                 {"victims_not_ready", t.victims_not_ready},
                 {"recovery_p50_s", t.recovery_p50_s},
                 {"recovery_p99_s", t.recovery_p99_s},
                 {"recovery_max_s", t.recovery_max_s},
                 {"leaked_blocks", t.leaked_blocks},
                 {"leftover_segments", t.leftover_segments},
                 {"checkpoints", t.checkpoints},
                 {"unsettled_checkpoints", t.unsettled_checkpoints}};
  j["runs"] = nlohmann::json::array();
  for (const TransferRun& run : result.runs) {
    nlohmann::json r = {{"transfer", run.transfer}, {"wall_s", run.wall_s}};
    r["checkpoints"] = nlohmann::json::array();
    for (const Checkpoint& c : run.checkpoints) {
      r["checkpoints"].push_back({{"after_trial", c.after_trial},
                                  {"settled", c.settled},
                                  {"settle_s", c.settle_s},
                                  {"leaked_blocks", c.leaked_blocks},
                                  {"workers_live", c.workers_live},
                                  {"dead_owner_segments", c.dead_owner_segments},
                                  {"leftovers", c.leftovers},
                                  {"live_segments", c.live_segments}});
    }
    for (const auto& [name, n] : run.restarts) r["restarts"][name] = n;
    j["runs"].push_back(r);
  }
  return j;
}

std::string Csv(const FaultBenchResult& result) {
  std::string csv =
      "trial,transfer,fault,victim,victim_pid,victim_ready,in_flight_at_fault,verified,"
      "clean_errors,wrong_tokens,never_ended,failed_elsewhere,fault_s,serving_again_s\n";
  for (const TransferRun& run : result.runs) {
    for (const TrialResult& t : run.trials) {
      absl::StrAppend(&csv, absl::StrFormat("%d,%s,%s,%s,%d,%d,%d,%d,%d,%d,%d,%d,%.3f,%.3f\n",
                                            t.index, run.transfer, FaultName(t.kind), t.victim,
                                            t.victim_pid, t.victim_ready ? 1 : 0,
                                            t.in_flight_at_fault, t.verified, t.clean_errors,
                                            t.wrong, t.never_ended, t.failed_elsewhere,
                                            (t.fault_end_ns - t.fault_ns) / 1e9,
                                            t.RecoverySeconds()));
    }
  }
  return csv;
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteFaultReport(const FaultBenchResult& result) {
  const FaultTotals t = Totals(result);
  const std::string& dir = result.options.out_dir;
  if (absl::Status s = WriteFile(dir + "/report.md", Markdown(result, t)); !s.ok()) return s;
  if (absl::Status s = WriteFile(dir + "/results.json", Json(result, t).dump(2) + "\n"); !s.ok()) {
    return s;
  }
  return WriteFile(dir + "/trials.csv", Csv(result));
}

}  // namespace pdserve::bench
