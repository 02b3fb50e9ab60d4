// The checklist items about time (overlap, where the TTFT tail goes) and the walk over a
// folder's backends and workloads.
#include "doctor/checks.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/ttft_stages.h"

namespace pdserve::doctor {

Finding Make(const char* item, std::string workload, std::string figure, Verdict v,
             std::string fix) {
  return {.item = item,
          .workload = std::move(workload),
          .figure = std::move(figure),
          .verdict = v,
          .fix = v == Verdict::kWarn || v == Verdict::kFail ? std::move(fix) : ""};
}

std::optional<double> MeanOf(const std::vector<const Cell*>& cells, const std::string& name) {
  double sum = 0;
  int n = 0;
  for (const Cell* c : cells) {
    if (const std::optional<double> v = c->Metric(name)) {
      sum += *v;
      ++n;
    }
  }
  return n == 0 ? std::nullopt : std::optional<double>(sum / n);
}

namespace {

using Stages = std::vector<std::pair<std::string, double>>;  // name -> ms, in path order

// The mean stages of the requests at or above the cell's p99 TTFT, from the per-request
// timelines: what the tail itself spent its time on, which a cell's means can hide.
Stages TailStages(const Cell& c, double p99_ms, int* tail_requests) {
  const nlohmann::json& timelines = c.Timelines();
  const nlohmann::json ttfts =
      c.result.is_object() ? c.result.value("ttfts", nlohmann::json()) : nullptr;
  std::map<std::string, double> sum;
  int n = 0;
  for (size_t i = 0; ttfts.is_array() && i < timelines.size() && i < ttfts.size(); ++i) {
    const nlohmann::json& stages = timelines[i].value("ttft_stages_ms", nlohmann::json());
    if (!ttfts[i].is_number() || !stages.is_object() || ttfts[i].get<double>() * 1e3 < p99_ms)
      continue;
    double known = 0;
    for (auto it = stages.begin(); it != stages.end(); ++it) {
      if (!it.value().is_number()) continue;
      sum[it.key()] += it.value().get<double>();
      known += it.value().get<double>();
    }
    // The client's TTFT beyond the server's stages, up to the relay: the client and the network
    // (a cell's first request pays its channel's connection here).
    sum["client_network"] += std::max(0.0, ttfts[i].get<double>() * 1e3 - known);
    ++n;
  }
  if (n == 0) {
    // No timelines: the per-request CSV's server figures, the rest of the TTFT as "other"
    // (dispatch, decode admission, the relay to the client).
    for (const auto& r : c.requests) {
      const auto get = [&](const char* k) {
        const auto it = r.find(k);
        return it == r.end() ? 0.0 : it->second;
      };
      if (get("success") != 1 || !r.contains("ttft_ms") || get("ttft_ms") < p99_ms) continue;
      double known = 0;
      for (const auto& [stage, column] :
           std::vector<std::pair<const char*, const char*>>{{"queue", "queue_ms"},
                                                            {"prefill", "prefill_ms"},
                                                            {"kv_transfer", "transfer_ms"},
                                                            {"first_step", "first_step_ms"}}) {
        sum[stage] += get(column);
        known += get(column);
      }
      sum["other"] += std::max(0.0, get("ttft_ms") - known);
      ++n;
    }
  }
  *tail_requests = n;
  Stages out;
  if (n == 0) return out;
  for (absl::string_view name : TtftStageNames()) {
    const auto it = sum.find(std::string(name));
    if (it != sum.end()) out.emplace_back(it->first, it->second / n);
  }
  for (const char* rest : {"client_network", "other"}) {
    if (const auto it = sum.find(rest); it != sum.end()) out.emplace_back(rest, it->second / n);
  }
  return out;
}

// The cell's mean stages: the bench's own split where recorded, else the older summary columns.
Stages MeanStages(const Cell& c) {
  Stages out;
  for (absl::string_view name : TtftStageNames()) {
    if (auto v = c.Metric(absl::StrCat("mean_ttft_stage_", name, "_ms")))
      out.emplace_back(name, *v);
  }
  if (auto v = c.Metric("mean_ttft_stage_other_ms"); v && !out.empty())
    out.emplace_back("other", *v);
  if (!out.empty()) return out;
  // Folders from before the stage split: mean_control_plane_ms is TTFT - prefill - transfer,
  // so it holds the queue and the first step too; what is left of it is "other".
  double other = c.Metric("mean_control_plane_ms").value_or(0);
  for (const auto& [stage, column] :
       std::vector<std::pair<const char*, const char*>>{{"queue", "mean_queue_ms"},
                                                        {"prefill", "mean_prefill_ms"},
                                                        {"kv_transfer", "mean_kv_transfer_ms"},
                                                        {"first_step", "mean_first_step_ms"}}) {
    if (auto v = c.Metric(column)) {
      out.emplace_back(stage, *v);
      if (std::string_view(stage) == "queue" || std::string_view(stage) == "first_step")
        other -= *v;
    }
  }
  if (!out.empty()) out.emplace_back("other", std::max(0.0, other));
  return out;
}

}  // namespace

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kOk:
      return "ok";
    case Verdict::kWarn:
      return "warn";
    case Verdict::kFail:
      return "fail";
    case Verdict::kNotApplicable:
      return "n/a";
  }
  return "?";
}

Finding CheckOverlap(const ResultsFolder& f, const std::vector<const Cell*>& cells) {
  const std::string w = absl::StrCat("in", cells.front()->input_len);
  const std::optional<double> bytes = MeanOf(cells, "mean_kv_bytes");
  if (!bytes || *bytes <= 0) return Make(kOverlap, w, "no KV moved", Verdict::kNotApplicable);
  const std::optional<double> exposed = MeanOf(cells, "mean_exposed_transfer_ms");
  const std::optional<double> ttft = MeanOf(cells, "mean_ttft_ms");
  if (!exposed || !ttft || *ttft <= 0) {
    return Make(kOverlap, w, "not recorded (no mean_exposed_transfer_ms in this folder)",
                Verdict::kNotApplicable);
  }
  // Null (no transfer time to hide, e.g. zero-copy) counts as nothing hidden; the exposed
  // share then decides.
  const double hidden = MeanOf(cells, "mean_kv_hidden_share").value_or(0);
  const double share = *exposed / *ttft;
  const std::string figure =
      absl::StrFormat("%.0f%% of transfer hidden; exposed %.2f ms = %.0f%% of mean TTFT",
                      100 * hidden, *exposed, 100 * share);
  if (share < kExposedShareOfTtft || hidden >= kMinHiddenShare) {
    return Make(kOverlap, w, figure, Verdict::kOk);
  }
  return Make(kOverlap, w, figure, Verdict::kWarn,
              f.OneHost() ? "--stream-chunk-tokens 128 (KV streamed during the prefill), or "
                            "--zero-copy (bench: --backends local-zc) on one host"
                          : "--stream-chunk-tokens 128 (KV streamed during the prefill)");
}

Finding CheckTtftTail(const std::vector<const Cell*>& cells) {
  const std::string w = absl::StrCat("in", cells.front()->input_len);
  const Cell* worst = nullptr;
  double p99 = 0;
  for (const Cell* c : cells) {
    if (auto v = c->Metric("p99_ttft_ms"); v && *v > p99) {
      p99 = *v;
      worst = c;
    }
  }
  if (worst == nullptr) return Make(kTtftP99, w, "no p99 TTFT recorded", Verdict::kNotApplicable);
  int tail = 0;
  Stages stages = TailStages(*worst, p99, &tail);
  const std::string source =
      tail > 0 ? absl::StrCat("its ", tail, " slowest request(s)") : "cell means";
  if (stages.empty()) stages = MeanStages(*worst);
  std::string figure =
      absl::StrFormat("p99 %.1f ms (worst cell out%d @%s/s)", p99, worst->output_len, worst->rate);
  if (stages.empty()) {
    return Make(kTtftP99, w, absl::StrCat(figure, "; stages not recorded"),
                Verdict::kNotApplicable);
  }
  Stages sorted = stages;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  double total = 0;
  for (const auto& s : stages) total += s.second;
  std::vector<std::string> top;
  for (size_t i = 0; i < sorted.size() && i < 3; ++i) {
    top.push_back(absl::StrFormat("%s %.1f ms (%.0f%%)", sorted[i].first, sorted[i].second,
                                  total > 0 ? 100 * sorted[i].second / total : 0.0));
  }
  absl::StrAppend(&figure, "; largest stage in ", source, ": ", absl::StrJoin(top, ", "));
  const std::string& largest = sorted.front().first;
  if (largest == "kv_transfer") {
    return Make(kTtftP99, w, figure, Verdict::kWarn,
                "the KV transfer leads the tail: see transports / small-ops / overlap; "
                "--stream-chunk-tokens 128 or --backends local-zc on one host");
  }
  if (largest == "queue") {
    return Make(kTtftP99, w, figure, Verdict::kWarn,
                "requests wait for the cluster: more workers (--prefill N --decode N) or a rate "
                "within capacity (pdserve bench --find-capacity)");
  }
  return Make(kTtftP99, w, figure, Verdict::kOk);
}

Diagnosis Diagnose(const ResultsFolder& f) {
  Diagnosis d{.dir = f.dir, .cells = static_cast<int>(f.cells.size())};
  for (const std::string& backend : f.backends) {
    std::vector<const Cell*> all;
    std::map<int, std::vector<const Cell*>> by_input;
    for (const Cell& c : f.cells) {
      if (!c.Timelines().empty()) d.timelines = true;
      if (c.backend != backend || !c.error.empty()) continue;
      all.push_back(&c);
      by_input[c.input_len].push_back(&c);
    }
    const auto t = f.transports.find(backend);
    BackendDiagnosis b{.backend = backend, .transports = t == f.transports.end() ? "" : t->second};
    // In the checklist's order: how the KV is cut, how it is posted, set-up per transfer, the
    // transport, then what the time shows.
    auto per_workload = [&](auto check) {
      for (const auto& [input, cells] : by_input) b.findings.push_back(check(cells));
    };
    bool moves_kv = false;
    for (const Cell* c : all) moves_kv = moves_kv || c->Metric("mean_kv_bytes").value_or(0) > 0;
    if (!moves_kv && !all.empty()) {
      // Colocated (or a run that moved nothing): no transfer to judge, one line says so.
      b.findings.push_back(CheckTransports(f, backend));
      per_workload([&](const auto& cells) { return CheckTtftTail(cells); });
      d.backends.push_back(std::move(b));
      continue;
    }
    per_workload([&](const auto& cells) { return CheckSmallOps(f, cells); });
    per_workload([&](const auto& cells) { return CheckBatching(cells); });
    if (!all.empty()) {
      b.findings.push_back(CheckRegistrations(f, backend, all));
      b.findings.push_back(CheckTransports(f, backend));
      b.findings.push_back(CheckStaging(f, backend, all));
    }
    per_workload([&](const auto& cells) { return CheckOverlap(f, cells); });
    per_workload([&](const auto& cells) { return CheckVsBaseline(f, cells); });
    per_workload([&](const auto& cells) { return CheckTtftTail(cells); });
    d.backends.push_back(std::move(b));
  }
  return d;
}

}  // namespace pdserve::doctor
