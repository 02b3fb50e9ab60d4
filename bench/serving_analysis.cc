#include "bench/serving_analysis.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/serving_backends.h"
#include "bench/transfer_overlap.h"

namespace pdserve::bench {
namespace {

std::string Interval(const MeanDifference& d, const char* unit) {
  return absl::StrFormat("%+.3f %s [%.3f, %.3f]", d.estimate, unit, d.lo, d.hi);
}

std::string CellName(const ServingRun& r) {
  return absl::StrCat(WorkloadName(r), " at ", RateName(r.request_rate), " req/s");
}

double Divide(double num, double den) { return den > 0 ? num / den : NAN; }

}  // namespace

std::string WorkloadName(const ServingRun& r) {
  return absl::StrCat("in", r.input_len, "/out", r.output_len);
}

std::string RateName(double rate) {
  return std::isinf(rate) ? std::string("inf") : absl::StrFormat("%g", rate);
}

RequestSamples SamplesOf(const nlohmann::json& result) {
  RequestSamples s;
  const nlohmann::json* ttfts = result.contains("ttfts") ? &result["ttfts"] : nullptr;
  const nlohmann::json* errors = result.contains("errors") ? &result["errors"] : nullptr;
  const nlohmann::json* timelines =
      result.contains("server_timelines") ? &result["server_timelines"] : nullptr;
  const nlohmann::json* latencies = result.contains("latencies") ? &result["latencies"] : nullptr;
  const nlohmann::json* outputs = result.contains("output_lens") ? &result["output_lens"] : nullptr;
  const nlohmann::json* starts = result.contains("start_times") ? &result["start_times"] : nullptr;
  std::vector<TransferInterval> placed;
  std::vector<double> placed_ms;
  if (ttfts == nullptr || errors == nullptr || !ttfts->is_array() || !errors->is_array()) return s;
  double bytes = 0, ops = 0;
  for (size_t i = 0; i < ttfts->size() && i < errors->size(); ++i) {
    const nlohmann::json& e = (*errors)[i];
    if (!e.is_string() || !e.get<std::string>().empty() || !(*ttfts)[i].is_number()) continue;
    s.ttft_ms.push_back((*ttfts)[i].get<double>() * 1e3);
    if (latencies != nullptr && outputs != nullptr && i < latencies->size() &&
        i < outputs->size() && (*latencies)[i].is_number() && (*outputs)[i].is_number()) {
      const double tokens = (*outputs)[i].get<double>();
      if (tokens > 1) {
        s.tpot_ms.push_back(((*latencies)[i].get<double>() - (*ttfts)[i].get<double>()) * 1e3 /
                            (tokens - 1));
      }
    }
    if (timelines == nullptr || i >= timelines->size() || !(*timelines)[i].is_object()) continue;
    const nlohmann::json& t = (*timelines)[i];
    s.transfer_ms.push_back(t.value("transfer_ms", 0.0));
    TransferInterval interval;
    if (starts != nullptr && i < starts->size() && (*starts)[i].is_number() &&
        IntervalOf((*starts)[i].get<double>(), t, &interval)) {
      placed.push_back(std::move(interval));
      placed_ms.push_back(s.transfer_ms.back());
    }
    bytes += t.value("kv_bytes", 0.0);
    ops += t.value("transfer_ops", 0.0);
  }
  const std::vector<bool> alone = RanAlone(placed);
  s.transfers_placed = placed.size();
  for (size_t i = 0; i < placed.size(); ++i) {
    if (!alone[i]) continue;
    s.transfer_alone_ms.push_back(placed_ms[i]);
    s.transfer_alone_wait_share.push_back(WaitShare(placed[i], placed_ms[i]));
  }
  if (!s.transfer_ms.empty()) {
    s.mean_kv_bytes = bytes / static_cast<double>(s.transfer_ms.size());
    s.mean_ops = ops / static_cast<double>(s.transfer_ms.size());
  }
  return s;
}

std::vector<CellAnalysis> AnalyseCells(const std::vector<ServingRun>& runs,
                                       const HostBoundRules& rules) {
  std::vector<CellAnalysis> cells;
  for (const ServingRun& r : runs) {
    CellAnalysis c;
    c.run = &r;
    if (r.error.empty()) {
      const SendLag lag{ResultNumber(r.result, "p99_send_lag_ms"),
                        ResultNumber(r.result, "max_send_lag_ms")};
      const double gap_ms =
          r.request_rate > 0 && std::isfinite(r.request_rate) ? 1000.0 / r.request_rate : 0.0;
      c.verdict = JudgeHostBound(
          r.usage,
          {std::isnan(lag.p99_ms) ? -1 : lag.p99_ms, std::isnan(lag.max_ms) ? -1 : lag.max_ms,
           gap_ms},
          rules);
      c.samples = SamplesOf(r.result);
      c.ttft_mean_ci = BootstrapMean(c.samples.ttft_ms);
      c.ttft_p50_ci = BootstrapQuantile(c.samples.ttft_ms, 0.50);
      c.ttft_p99_ci = BootstrapQuantile(c.samples.ttft_ms, 0.99);
    }
    cells.push_back(std::move(c));
  }
  return cells;
}

std::string Comparison::Cause() const {
  const RequestSamples& a = baseline->samples;
  const RequestSamples& b = other->samples;
  const std::string bytes = std::fabs(a.mean_kv_bytes - b.mean_kv_bytes) < 0.5
                                ? absl::StrFormat("the same %.1f MiB", a.mean_kv_bytes / 1048576)
                                : absl::StrFormat("%.1f vs %.1f MiB", b.mean_kv_bytes / 1048576,
                                                  a.mean_kv_bytes / 1048576);
  const std::string what = absl::StrFormat("KV transfer %s for %s (%.0f vs %.0f ops)",
                                           Interval(transfer, "ms"), bytes, b.mean_ops, a.mean_ops);
  if (!transfer.Valid()) return "no KV transfer samples";
  // The transfer explains a TTFT difference when it moved the same way, beyond noise, and by
  // at least half as much.
  const bool explains = !transfer.SpansZero() && !ttft.SpansZero() &&
                        (transfer.estimate > 0) == (ttft.estimate > 0) &&
                        std::fabs(transfer.estimate) >= 0.5 * std::fabs(ttft.estimate);
  return explains ? absl::StrCat("explained by ", what)
                  : absl::StrCat("not explained by the KV transfer (", what, ")");
}

std::vector<Comparison> CompareBackends(const std::vector<CellAnalysis>& cells,
                                        const std::string& baseline,
                                        const BootstrapOptions& options) {
  std::map<std::tuple<int, int, double>, const CellAnalysis*> base;
  for (const CellAnalysis& c : cells) {
    if (IsColocated(c.run->backend)) continue;
    if (c.run->backend == baseline && c.run->error.empty()) {
      base[{c.run->input_len, c.run->output_len, c.run->request_rate}] = &c;
    }
  }
  std::vector<Comparison> out;
  for (const CellAnalysis& c : cells) {
    if (c.run->backend == baseline || !c.run->error.empty() || IsColocated(c.run->backend)) {
      continue;
    }
    auto it = base.find({c.run->input_len, c.run->output_len, c.run->request_rate});
    if (it == base.end()) continue;
    Comparison cmp{.baseline = it->second, .other = &c};
    cmp.ttft = BootstrapMeanDifference(it->second->samples.ttft_ms, c.samples.ttft_ms, options);
    cmp.transfer =
        BootstrapMeanDifference(it->second->samples.transfer_ms, c.samples.transfer_ms, options);
    out.push_back(cmp);
  }
  return out;
}

std::string Headline(const std::vector<CellAnalysis>& cells,
                     const std::vector<Comparison>& comparisons, const std::string& baseline) {
  std::vector<std::string> backends;
  for (const CellAnalysis& c : cells) {
    if (c.run->backend != baseline && !IsColocated(c.run->backend) &&
        std::find(backends.begin(), backends.end(), c.run->backend) == backends.end()) {
      backends.push_back(c.run->backend);
    }
  }
  int host_bound = 0, unverified = 0;
  int transfer_cells = 0;
  for (const CellAnalysis& c : cells) {
    if (IsColocated(c.run->backend)) continue;  // not in this line either way
    ++transfer_cells;
    if (!c.run->error.empty()) continue;
    host_bound += c.verdict.host_bound;
    unverified += !c.verdict.host_bound && c.verdict.unverified;
  }
  std::vector<std::string> lines;
  for (const std::string& b : backends) {
    int pairs = 0, comparable = 0, higher = 0, lower = 0;
    const Comparison* largest = nullptr;
    for (const Comparison& cmp : comparisons) {
      if (cmp.other->run->backend != b) continue;
      ++pairs;
      if (!cmp.comparable() || !cmp.ttft.Valid()) continue;
      ++comparable;
      if (cmp.ttft.SpansZero()) continue;
      (cmp.ttft.estimate > 0 ? higher : lower)++;
      if (largest == nullptr || std::fabs(cmp.ttft.estimate) > std::fabs(largest->ttft.estimate)) {
        largest = &cmp;
      }
    }
    if (comparable == 0) {
      lines.push_back(
          absl::StrFormat("%s vs %s: no comparison (%d cell pairs, none where both "
                          "cells are verified, not host-bound and completed 2 or "
                          "more requests)",
                          b, baseline, pairs));
    } else if (largest == nullptr) {
      lines.push_back(absl::StrFormat(
          "%s vs %s: no difference in mean TTFT within noise in any of %d comparable cells "
          "(every 95%% bootstrap interval spans zero)",
          b, baseline, comparable));
    } else {
      lines.push_back(absl::StrFormat(
          "%s vs %s: mean TTFT higher in %d and lower in %d of %d comparable cells (95%% "
          "bootstrap interval excludes zero); largest at %s: %s, %s",
          b, baseline, higher, lower, comparable, CellName(*largest->other->run),
          Interval(largest->ttft, "ms"), largest->Cause()));
    }
  }
  std::string out = lines.empty() ? absl::StrCat("no comparison: runs of ", baseline,
                                                 " and of another transfer backend are needed")
                                  : absl::StrJoin(lines, "; ");
  if (host_bound > 0 || unverified > 0) {
    std::vector<std::string> kept_out;
    if (host_bound > 0) kept_out.push_back(absl::StrCat(host_bound, " host-bound"));
    if (unverified > 0) kept_out.push_back(absl::StrCat(unverified, " unverified"));
    absl::StrAppend(&out, " (kept out of this line: ", absl::StrJoin(kept_out, " and "), " of ",
                    transfer_cells, " cells)");
  }
  return out;
}

std::string TtftModelSummary(const std::vector<CellAnalysis>& cells, double tolerance) {
  int checked = 0, within = 0, at_rate1 = 0;
  double lo = INFINITY, hi = -INFINITY;
  for (const CellAnalysis& c : cells) {
    if (!c.usable() || c.run->request_rate != 1) continue;
    ++at_rate1;
    const double ratio = ResultNumber(c.run->result, "ttft_to_model_ratio");
    if (std::isnan(ratio)) continue;
    ++checked;
    within += std::fabs(ratio - 1) <= tolerance;
    lo = std::min(lo, ratio);
    hi = std::max(hi, ratio);
  }
  if (at_rate1 == 0) return "no usable cell at 1 req/s";
  if (checked == 0) {
    return absl::StrFormat(
        "not checked: none of the %d usable cells at 1 req/s has the modelled "
        "prefill, modelled first step and decode join reported by the engines",
        at_rate1);
  }
  return absl::StrFormat(
      "mean TTFT within %.0f%% of the model in %d of %d usable cells at "
      "1 req/s (ratios %.2f - %.2f)",
      tolerance * 100, within, checked, lo, hi);
}

const RequestTransferBaseline* BaselineFor(const ServingRun& run,
                                           const std::vector<RequestTransferBaseline>& baselines) {
  for (const RequestTransferBaseline& b : baselines) {
    if (b.backend == run.backend && b.input_len == run.input_len) return &b;
  }
  return nullptr;
}

double AloneTransferMean(const RequestSamples& s, double skip_starved_above) {
  double sum = 0;
  size_t n = 0;
  for (size_t i = 0; i < s.transfer_alone_ms.size(); ++i) {
    const double share = i < s.transfer_alone_wait_share.size() ? s.transfer_alone_wait_share[i] : 0;
    if (skip_starved_above >= 0 && Starved(share, skip_starved_above)) continue;
    sum += s.transfer_alone_ms[i];
    ++n;
  }
  return n < kMinAloneTransfers ? NAN : sum / static_cast<double>(n);
}

size_t StarvedTransfers(const RequestSamples& s, double baseline_wait_share) {
  size_t n = 0;
  for (double share : s.transfer_alone_wait_share) n += Starved(share, baseline_wait_share);
  return n;
}

TransferVerdict JudgeTransfer(const RequestSamples& s, const RequestTransferBaseline& baseline,
                              double target) {
  TransferVerdict v;
  v.ratio = Divide(AloneTransferMean(s), baseline.Reference());
  v.starved = StarvedTransfers(s, baseline.WaitShare());
  if (std::isnan(v.ratio) || v.ratio <= target || v.starved == 0) return v;
  const double rest = Divide(AloneTransferMean(s, baseline.WaitShare()), baseline.Reference());
  v.starved_miss = std::isnan(rest) || rest <= target;
  return v;
}

namespace {

struct RatioCount {
  std::vector<double> ratios;
  int within = 0;
  void Add(double ratio, double target) {
    ratios.push_back(ratio);
    within += ratio <= target;
  }
  std::string Describe(double target) const {
    if (ratios.empty()) return "no cell";
    std::vector<double> r = ratios;
    std::sort(r.begin(), r.end());
    const size_t n = r.size();
    const double median = n % 2 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2;
    return absl::StrFormat("within %.1fx in %d of %zu usable cells (median %.2fx, max %.2fx)",
                           target, within, n, median, r.back());
  }
};

}  // namespace

std::string TransferBaselineSummary(const std::vector<CellAnalysis>& cells,
                                    const std::vector<RequestTransferBaseline>& baselines,
                                    double target) {
  RatioCount alone, alone_low_rate, all;
  int too_few = 0, shared = 0, placed = 0, starved_cells = 0;
  for (const CellAnalysis& c : cells) {
    const RequestTransferBaseline* b = BaselineFor(*c.run, baselines);
    if (!c.usable() || b == nullptr) continue;
    const double every = Divide(ResultNumber(c.run->result, "mean_kv_transfer_ms"), b->Reference());
    if (std::isnan(every)) continue;
    all.Add(every, target);
    placed += static_cast<int>(c.samples.transfers_placed);
    shared += static_cast<int>(c.samples.transfers_placed - c.samples.transfer_alone_ms.size());
    const TransferVerdict v = JudgeTransfer(c.samples, *b, target);
    if (std::isnan(v.ratio)) {
      ++too_few;
      continue;
    }
    if (v.starved_miss) {
      ++starved_cells;
      continue;
    }
    alone.Add(v.ratio, target);
    if (c.run->request_rate <= 4) alone_low_rate.Add(v.ratio, target);
  }
  if (all.ratios.empty()) return "no usable cell with a same-run transfer baseline";
  std::string out = absl::StrCat(
      "serving / microbenchmark cold median KV transfer time, transfers that ran alone (as the "
      "microbenchmark's do): ",
      alone.Describe(target), "; at 1 and 4 req/s ", alone_low_rate.Describe(target));
  if (too_few > 0) {
    absl::StrAppend(&out, "; ", too_few, " cells had fewer than ", kMinAloneTransfers,
                    " transfers alone");
  }
  if (starved_cells > 0) {
    absl::StrAppend(&out, "; set apart as host-bound: ", starved_cells,
                    " cells above it whose transfers alone were within it once those whose copy "
                    "threads waited for a core for over ",
                    static_cast<int>(kStarvedWaitShare * 100),
                    " points more of their time than the microbenchmark's were left out");
  }
  absl::StrAppend(&out, ". Every transfer, including the ", shared, " of ", placed,
                  " that shared a worker with another: ", all.Describe(target));
  return out;
}

}  // namespace pdserve::bench
