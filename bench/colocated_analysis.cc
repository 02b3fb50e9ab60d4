#include "bench/colocated_analysis.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/serving_backends.h"

namespace pdserve::bench {
namespace {

// Why a cell is kept out of the summary, or "".
std::string WhyNot(const CellAnalysis& c) {
  if (!c.run->error.empty()) return "failed";
  if (c.verdict.host_bound) return "host-bound";
  if (c.verdict.unverified) return "unverified";
  return "";
}

}  // namespace

std::string FormatRatio(const Ratio& r) {
  return r.Valid() ? absl::StrFormat("%.2fx [%.2f, %.2f]", r.estimate, r.lo, r.hi) : "-";
}

double CellGoodput::PerSecond() const {
  return duration_s > 0 ? good / duration_s : NAN;
}

double CellGoodput::Attainment() const {
  return completed > 0 ? static_cast<double>(good) / completed : NAN;
}

CellGoodput GoodputOf(const nlohmann::json& result, const loadgen::SloSpec& slos) {
  CellGoodput g;
  g.duration_s = ResultNumber(result, "duration");
  if (std::isnan(g.duration_s)) g.duration_s = 0;
  auto array = [&](const char* key) -> const nlohmann::json* {
    auto it = result.find(key);
    return it != result.end() && it->is_array() ? &*it : nullptr;
  };
  const nlohmann::json *ttfts = array("ttfts"), *errors = array("errors"),
                       *latencies = array("latencies"), *outputs = array("output_lens");
  if (ttfts == nullptr || errors == nullptr || latencies == nullptr || outputs == nullptr) {
    return g;
  }
  const size_t n = std::min({ttfts->size(), errors->size(), latencies->size(), outputs->size()});
  for (size_t i = 0; i < n; ++i) {
    const nlohmann::json& e = (*errors)[i];
    if (!e.is_string() || !e.get<std::string>().empty() || !(*ttfts)[i].is_number() ||
        !(*latencies)[i].is_number() || !(*outputs)[i].is_number()) {
      continue;
    }
    ++g.completed;
    const double ttft_ms = (*ttfts)[i].get<double>() * 1e3;
    const double e2el_ms = (*latencies)[i].get<double>() * 1e3;
    const double tokens = (*outputs)[i].get<double>();
    // As loadgen's RequestRecord::TpotS: a single output token has TPOT 0.
    const double tpot_ms = tokens > 1 ? (e2el_ms - ttft_ms) / (tokens - 1) : 0.0;
    g.good += loadgen::MeetsSlos(slos, ttft_ms, tpot_ms, e2el_ms);
  }
  return g;
}

std::string ColocatedComparison::Exclusion() const {
  std::vector<std::string> why;
  if (const std::string p = WhyNot(*pd); !p.empty()) why.push_back(absl::StrCat("P/D cell ", p));
  if (const std::string c = WhyNot(*colocated); !c.empty()) {
    why.push_back(absl::StrCat("colocated cell ", c));
  }
  return absl::StrJoin(why, ", ");
}

std::vector<ColocatedComparison> CompareWithColocated(const std::vector<CellAnalysis>& cells,
                                                      const loadgen::SloSpec& slos,
                                                      const BootstrapOptions& options) {
  std::map<std::tuple<int, int, double>, const CellAnalysis*> colocated;
  for (const CellAnalysis& c : cells) {
    if (IsColocated(c.run->backend)) {
      colocated[{c.run->input_len, c.run->output_len, c.run->request_rate}] = &c;
    }
  }
  std::vector<ColocatedComparison> out;
  for (const CellAnalysis& c : cells) {
    if (IsColocated(c.run->backend)) continue;
    auto it = colocated.find({c.run->input_len, c.run->output_len, c.run->request_rate});
    if (it == colocated.end()) continue;
    const CellAnalysis& co = *it->second;
    ColocatedComparison cmp{.pd = &c, .colocated = &co};
    // Samples of a failed cell are empty: its ratios come out invalid.
    cmp.ttft_p50 = BootstrapQuantileRatio(co.samples.ttft_ms, c.samples.ttft_ms, 0.5, options);
    cmp.ttft_mean = BootstrapMeanRatio(co.samples.ttft_ms, c.samples.ttft_ms, options);
    cmp.tpot_p50 = BootstrapQuantileRatio(co.samples.tpot_ms, c.samples.tpot_ms, 0.5, options);
    cmp.pd_goodput = GoodputOf(c.run->result, slos);
    cmp.colocated_goodput = GoodputOf(co.run->result, slos);
    out.push_back(cmp);
  }
  return out;
}

double SummaryRate(const std::vector<ColocatedComparison>& comparisons) {
  double lowest = NAN;
  for (const ColocatedComparison& c : comparisons) {
    const double rate = c.pd->run->request_rate;
    if (rate == 1) return 1;
    if (std::isnan(lowest) || rate < lowest) lowest = rate;
  }
  return lowest;
}

std::string ColocatedSummary(const std::vector<ColocatedComparison>& comparisons) {
  const double rate = SummaryRate(comparisons);
  if (std::isnan(rate)) {
    return "no comparison: runs of colocated and of a P/D backend in the same cells are needed";
  }
  std::vector<std::string> backends;  // in run order
  std::map<std::string, std::vector<std::string>> parts;
  std::vector<std::string> left_out;
  for (const ColocatedComparison& c : comparisons) {
    const ServingRun& r = *c.pd->run;
    if (r.request_rate != rate) continue;
    const std::string cell = absl::StrCat(r.backend, " ", WorkloadName(r));
    if (!c.comparable()) {
      left_out.push_back(absl::StrCat(cell, " (", c.Exclusion(), ")"));
      continue;
    }
    if (!c.ttft_p50.Valid()) {
      left_out.push_back(absl::StrCat(cell, " (fewer than 2 requests)"));
      continue;
    }
    if (std::find(backends.begin(), backends.end(), r.backend) == backends.end()) {
      backends.push_back(r.backend);
    }
    parts[r.backend].push_back(absl::StrCat(
        FormatRatio(c.ttft_p50), " ", WorkloadName(r),
        c.tpot_p50.Valid() ? absl::StrFormat(" (TPOT p50 %.2fx)", c.tpot_p50.estimate) : ""));
  }
  std::vector<std::string> lines;
  for (const std::string& b : backends) {
    lines.push_back(absl::StrCat(b, " ", absl::StrJoin(parts[b], ", ")));
  }
  std::string out = absl::StrCat("P/D TTFT p50 / colocated at ", RateName(rate), " req/s: ",
                                 lines.empty() ? "no comparable cell" : absl::StrJoin(lines, "; "));
  if (!left_out.empty()) {
    absl::StrAppend(&out, " (left out: ", absl::StrJoin(left_out, ", "), ")");
  }
  return out;
}

}  // namespace pdserve::bench
