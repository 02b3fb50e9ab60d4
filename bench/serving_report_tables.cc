#include "bench/serving_report_tables.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/serving_backends.h"
#include "common/model_config.h"
#include "common/ttft_stages.h"

namespace pdserve::bench {

std::string FormatNumber(const char* format, double v) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

namespace {

std::string Format(const char* format, double v) { return FormatNumber(format, v); }

std::string Field(const ServingRun& r, const char* field, const char* format) {
  return Format(format, ResultNumber(r.result, field));
}

std::string Header(const std::vector<std::string>& columns) {
  std::string out = absl::StrCat("| ", absl::StrJoin(columns, " | "), " |\n|");
  for (size_t i = 0; i < columns.size(); ++i) out += "---|";
  return out + "\n";
}

// One table row, made one line: a line break inside a cell would end the row.
std::string Row(const std::vector<std::string>& cells) {
  std::string row = absl::StrCat("| ", absl::StrJoin(cells, " | "), " |");
  for (char& ch : row) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return row + "\n";
}

// Free text (an error message from a failed run: gRPC status details, a child's stderr) as one
// table cell: its pipes escaped, so that it does not split the row.
std::string TextCell(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '|') out += '\\';
    out += ch;
  }
  return out;
}

std::string CellKey(const ServingRun& r) {
  return absl::StrCat(r.backend, " | ", WorkloadName(r), " | ", RateName(r.request_rate));
}

std::string Verdict(const CellAnalysis& c) {
  if (!c.run->error.empty()) return "FAILED";
  if (c.verdict.host_bound) {
    std::string v = absl::StrCat("HOST-BOUND: ", absl::StrJoin(c.verdict.reasons, "; "));
    if (!c.verdict.notes.empty())
      absl::StrAppend(&v, " (", absl::StrJoin(c.verdict.notes, "; "), ")");
    return v;
  }
  if (c.verdict.unverified)
    return absl::StrCat("unverified: ", absl::StrJoin(c.verdict.notes, "; "));
  if (c.verdict.notes.empty()) return "ok";
  return absl::StrCat("ok (", absl::StrJoin(c.verdict.notes, "; "), ")");
}

// The report's columns: JSON field, header, printf format.
struct Column {
  const char* field;
  const char* header;
  const char* format;
};
constexpr Column kColumns[] = {
    {"mean_ttft_ms", "TTFT mean (ms)", "%.2f"},
    {"p99_ttft_ms", "TTFT p99 (ms)", "%.2f"},
    {"mean_tpot_ms", "TPOT mean (ms)", "%.2f"},
    {"p99_tpot_ms", "TPOT p99 (ms)", "%.2f"},
    {"p99_itl_ms", "ITL p99 (ms)", "%.2f"},
    {"p99_e2el_ms", "E2E p99 (ms)", "%.2f"},
    {"request_throughput", "req/s", "%.3f"},
    {"output_throughput", "out tok/s", "%.1f"},
    {"mean_kv_transfer_ms", "KV xfer mean (ms)", "%.3f"},
    {"p99_kv_transfer_ms", "KV xfer p99 (ms)", "%.3f"},
    {"kv_transfer_gbps", "KV GB/s", "%.2f"},
    {"kv_transfer_share_of_ttft", "xfer share of TTFT", "%.3f"},
};

// Cores a process used over the cell, "name 0.42".
std::string CpuList(const CellUsage& u) {
  std::vector<std::string> parts;
  for (const ProcessCpu& p : u.processes) {
    parts.push_back(absl::StrFormat("%s %.2f", p.name, p.cpu_s / u.wall_s));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

std::string Overruns(const CellUsage& u) {
  std::vector<std::string> parts;
  for (const EngineDelta& e : u.engines) {
    if (e.steps == 0) continue;
    parts.push_back(absl::StrFormat("%s %u/%u", e.worker, e.overrun_steps, e.steps));
  }
  return parts.empty() ? "n/r" : absl::StrJoin(parts, ", ");
}

// Requests in flight at the peak x KV reserved per request, against the decode pool: more than
// it holds means some requests waited at the router for blocks (queueing, not failure).
std::string PoolNote(const ServingRun& r, double decode_pool_gib, const ModelConfig* config) {
  const double peak = ResultNumber(r.result, "peak_in_flight_requests");
  if (config == nullptr || decode_pool_gib <= 0 || std::isnan(peak)) return "";
  const double per_request =
      static_cast<double>(config->BlocksForTokens(r.input_len + r.output_len)) *
      static_cast<double>(config->KvBytesPerBlock());
  const double need_gib = peak * per_request / (1024.0 * 1024 * 1024);
  if (need_gib <= decode_pool_gib) return "";
  return absl::StrFormat(
      " [%.0f requests in flight would reserve %.1f GiB of the %.1f GiB "
      "decode pool: some queued for KV blocks]",
      peak, need_gib, decode_pool_gib);
}

// mock CPU / modelled time of one role's engines over the cell.
std::string MockShare(const CellUsage& u, bool decode) {
  uint64_t mock = 0, modelled = 0;
  for (const EngineDelta& e : u.engines) {
    if (e.decode != decode) continue;
    mock += e.mock_cpu_us;
    modelled += e.modelled_us;
  }
  return modelled > 0 ? absl::StrFormat("%.2f", static_cast<double>(mock) / modelled) : "-";
}

}  // namespace

std::string MarkdownHeader(const std::vector<std::string>& columns) { return Header(columns); }
std::string MarkdownRow(const std::vector<std::string>& cells) { return Row(cells); }

std::string ResultsTable(const std::vector<CellAnalysis>& cells) {
  std::vector<std::string> header = {"backend", "workload", "rate (req/s)", "completed", "failed"};
  for (const Column& c : kColumns) header.push_back(c.header);
  header.push_back("TTFT mean / p99 95% CI (ms)");
  header.push_back("cell");
  std::string md = Header(header);
  for (const CellAnalysis& c : cells) {
    const ServingRun& r = *c.run;
    std::vector<std::string> row = {r.backend, WorkloadName(r), RateName(r.request_rate)};
    if (!r.error.empty()) {
      row.insert(row.end(), {"FAILED", "-", TextCell(r.error)});
      for (size_t i = 1; i < std::size(kColumns); ++i) row.push_back("-");
      row.push_back("-");
      row.push_back("FAILED");
      md += Row(row);
      continue;
    }
    row.push_back(Field(r, "completed", "%.0f"));
    row.push_back(Field(r, "failed", "%.0f"));
    for (const Column& col : kColumns) row.push_back(Field(r, col.field, col.format));
    auto ci = [](const Difference& d) {
      return d.Valid() ? absl::StrFormat("[%.2f, %.2f]", d.lo, d.hi) : std::string("-");
    };
    const int n = static_cast<int>(c.samples.ttft_ms.size());
    row.push_back(absl::StrCat(ci(c.ttft_mean_ci), " / ", ci(c.ttft_p99_ci),
                               n < kP99MinRequests ? absl::StrCat(" (n=", n, ": p99 ~ max)") : ""));
    row.push_back(c.verdict.host_bound ? "host-bound" : c.usable() ? "ok" : "unverified");
    md += Row(row);
  }
  return md;
}

std::string HostTable(const std::vector<CellAnalysis>& cells, double decode_pool_gib,
                      const std::string& preset) {
  absl::StatusOr<ModelConfig> config = PresetConfig(preset);
  std::string md = Header({"backend", "workload", "rate", "prompts (planned)", "cell (s)",
                           "CPU per process (cores)", "ours / allowed CPUs", "host busy",
                           "engine overruns (steps)", "send lag p99 / max (ms)", "verdict"});
  for (const CellAnalysis& c : cells) {
    const ServingRun& r = *c.run;
    const CellUsage& u = r.usage;
    double ours = 0;
    for (const ProcessCpu& p : u.processes) ours += u.wall_s > 0 ? p.cpu_s / u.wall_s : 0;
    const bool measured = u.measured && u.wall_s > 0;
    md +=
        Row({CellKey(r),
             absl::StrCat(Field(r, "num_prompts", "%.0f"),
                          r.planned_prompts > 0 ? absl::StrCat(" (", r.planned_prompts, ")") : ""),
             measured ? absl::StrFormat("%.1f", u.wall_s) : "-", measured ? CpuList(u) : "-",
             measured ? absl::StrFormat("%.2f / %d", ours, u.allowed_cpus) : "-",
             measured && u.host_busy_cpus >= 0 ? absl::StrFormat("%.2f", u.host_busy_cpus) : "-",
             measured ? Overruns(u) : "-",
             absl::StrCat(Field(r, "p99_send_lag_ms", "%.2f"), " / ",
                          Field(r, "max_send_lag_ms", "%.2f")),
             Verdict(c) + PoolNote(r, decode_pool_gib, config.ok() ? &*config : nullptr)});
  }
  return md;
}

std::string AccountingTable(const std::vector<CellAnalysis>& cells) {
  std::string md =
      Header({"backend", "workload", "rate", "modelled prefill (ms)", "prefill mock CPU (ms)",
              "modelled first step (ms)", "decode verify CPU (ms)",
              "engine mock CPU / modelled (prefill, decode)", "queue (ms)", "control plane (ms)",
              "KV transfer (ms)", "exposed / hidden share", "first step (ms)", "TTFT model (ms)",
              "TTFT mean (ms)",
              "TTFT / model", "target at 1 req/s"});
  for (const CellAnalysis& c : cells) {
    const ServingRun& r = *c.run;
    if (!r.error.empty()) continue;
    const double ratio = ResultNumber(r.result, "ttft_to_model_ratio");
    std::string target = "-";
    if (r.request_rate == 1) {
      target = std::isnan(ratio) ? "not reported"
               : std::fabs(ratio - 1) <= kTtftModelTolerance
                   ? "within 15%"
                   : absl::StrFormat("off by %+.0f%%", (ratio - 1) * 100);
      if (!c.usable()) target += c.verdict.host_bound ? " (host-bound)" : " (unverified)";
    }
    md += Row({CellKey(r), Field(r, "mean_modelled_prefill_ms", "%.2f"),
               Field(r, "mean_prefill_mock_cpu_ms", "%.2f"),
               Field(r, "mean_modelled_first_step_ms", "%.2f"),
               Field(r, "mean_decode_verify_cpu_ms", "%.2f"),
               absl::StrCat(MockShare(r.usage, false), ", ", MockShare(r.usage, true)),
               Field(r, "mean_queue_ms", "%.2f"), Field(r, "mean_control_plane_ms", "%.2f"),
               Field(r, "mean_kv_transfer_ms", "%.2f"),
               absl::StrCat(Field(r, "mean_exposed_transfer_ms", "%.2f"), " / ",
                            Field(r, "mean_kv_hidden_share", "%.2f")),
               Field(r, "mean_first_step_ms", "%.2f"),
               Field(r, "mean_ttft_model_ms", "%.2f"), Field(r, "mean_ttft_ms", "%.2f"),
               Format("%.3f", ratio), target});
  }
  return md;
}

std::string TtftStagesTable(const std::vector<CellAnalysis>& cells) {
  std::vector<std::string> columns = {"backend", "workload", "rate"};
  for (absl::string_view stage : TtftStageNames()) columns.push_back(std::string(stage));
  columns.insert(columns.end(), {"other", "sum = TTFT (ms)", "requests"});
  std::string md = Header(columns);
  for (const CellAnalysis& c : cells) {
    const ServingRun& r = *c.run;
    if (!r.error.empty()) continue;
    std::vector<std::string> row = {CellKey(r)};
    double sum = 0;
    for (absl::string_view stage : TtftStageNames()) {
      const double v = ResultNumber(r.result, absl::StrCat("mean_ttft_stage_", stage, "_ms"));
      sum += v;
      row.push_back(Format("%.3f", v));
    }
    const double other = ResultNumber(r.result, "mean_ttft_stage_other_ms");
    row.push_back(Format("%.3f", other));
    row.push_back(Format("%.2f", sum + other));  // NaN, shown "-", when a stage is missing
    row.push_back(Field(r, "ttft_stage_requests", "%.0f"));
    md += Row(row);
  }
  return md;
}

std::string TransferTable(const std::vector<CellAnalysis>& cells,
                          const std::vector<RequestTransferBaseline>& baselines) {
  std::string md = Header({"backend", "prompt (tokens)", "blocks", "MiB", "ops", "transfers",
                           "cold mean (ms)", "p50 (ms)", "min (ms)", "GB/s (cold mean)",
                           "warm mean (ms)", "GB/s (warm)"});
  for (const RequestTransferBaseline& b : baselines) {
    md += Row({b.backend, absl::StrCat(b.input_len), absl::StrCat(b.blocks),
               absl::StrFormat("%.1f", b.bytes / 1048576.0), absl::StrCat(b.ops),
               absl::StrCat(b.transfers), absl::StrFormat("%.3f", b.mean_ms),
               absl::StrFormat("%.3f", b.p50_ms), absl::StrFormat("%.3f", b.min_ms),
               absl::StrFormat("%.2f", b.bytes / (b.mean_ms * 1e6)),
               b.warm_mean_ms > 0 ? absl::StrFormat("%.3f", b.warm_mean_ms) : "-",
               b.warm_mean_ms > 0 ? absl::StrFormat("%.2f", b.bytes / (b.warm_mean_ms * 1e6))
                                  : "-"});
  }
  md += "\n";
  md += Header({"backend", "workload", "rate", "serving MiB / ops", "serving mean (ms)",
                "alone (n of N)", "starved", "alone mean (ms)", "microbench MiB / ops",
                "microbench cold p50 (ms)", "serving mean / microbench", "alone / microbench",
                "target <= 1.5x (alone)"});
  for (const CellAnalysis& c : cells) {
    const ServingRun& r = *c.run;
    if (!r.error.empty() || IsColocated(r.backend)) continue;  // colocated moves no KV
    const RequestTransferBaseline* b = BaselineFor(r, baselines);
    const double reference = b != nullptr && b->Reference() > 0 ? b->Reference() : NAN;
    const double serving = ResultNumber(r.result, "mean_kv_transfer_ms");
    const double alone = AloneTransferMean(c.samples);
    const double ratio = alone / reference;
    const TransferVerdict v = b != nullptr ? JudgeTransfer(c.samples, *b, kTransferBaselineTarget)
                                           : TransferVerdict{};
    std::string target = std::isnan(ratio) ? "-" : ratio <= kTransferBaselineTarget ? "yes" : "no";
    if (!c.usable() && !std::isnan(ratio)) {
      target += c.verdict.host_bound ? " (host-bound)" : " (unverified)";
    } else if (v.starved_miss) {
      target += " (host-bound: copy threads starved)";
    }
    md += Row(
        {CellKey(r),
         absl::StrFormat("%.1f / %.0f", c.samples.mean_kv_bytes / 1048576.0, c.samples.mean_ops),
         Format("%.3f", serving),
         absl::StrFormat("%zu of %zu", c.samples.transfer_alone_ms.size(),
                         c.samples.transfers_placed),
         absl::StrCat(v.starved), Format("%.3f", alone),
         b != nullptr ? absl::StrFormat("%.1f / %u", b->bytes / 1048576.0, b->ops) : "-",
         Format("%.3f", reference), Format("%.2fx", serving / reference),
         Format("%.2fx", ratio), target});
  }
  return md;
}

std::string ComparisonTable(const std::vector<Comparison>& comparisons) {
  std::string md = Header({"backend", "workload", "rate", "vs", "TTFT mean diff (ms) [95% CI]",
                           "KV transfer mean diff (ms) [95% CI]", "MiB / ops (this, baseline)",
                           "n (this, baseline)", "verdict"});
  auto interval = [](const MeanDifference& d) {
    return d.Valid() ? absl::StrFormat("%+.3f [%.3f, %.3f]", d.estimate, d.lo, d.hi)
                     : std::string("-");
  };
  for (const Comparison& cmp : comparisons) {
    const ServingRun& r = *cmp.other->run;
    const RequestSamples& a = cmp.baseline->samples;
    const RequestSamples& b = cmp.other->samples;
    std::string verdict;
    if (!cmp.comparable()) {
      const bool mine = !cmp.other->usable(), theirs = !cmp.baseline->usable();
      verdict = absl::StrCat("excluded: ",
                             mine && theirs ? "both cells"
                             : mine         ? "this cell"
                                            : "the baseline cell",
                             " host-bound or unverified");
    } else if (!cmp.ttft.Valid()) {
      verdict = "too few requests";
    } else if (cmp.ttft.SpansZero()) {
      verdict = "no difference within noise";
    } else {
      verdict = absl::StrCat("differs; ", cmp.Cause());
    }
    md += Row({CellKey(r), cmp.baseline->run->backend, interval(cmp.ttft), interval(cmp.transfer),
               absl::StrFormat("%.1f / %.0f, %.1f / %.0f", b.mean_kv_bytes / 1048576.0, b.mean_ops,
                               a.mean_kv_bytes / 1048576.0, a.mean_ops),
               absl::StrFormat("%zu, %zu", b.ttft_ms.size(), a.ttft_ms.size()), verdict});
  }
  return md;
}

}  // namespace pdserve::bench
