// The P/D-against-colocated pairs (bench/colocated_analysis.h) as the report's table, as
// colocated_ratios.csv and as report-inputs.json's "colocated_ratios".
#include <cmath>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/capacity.h"
#include "bench/colocated_analysis.h"
#include "bench/serving_report_tables.h"

namespace pdserve::bench {
namespace {

std::string Number(const char* format, double v) { return FormatNumber(format, v); }

std::string Percent(double share) { return Number("%.0f%%", share * 100); }

// The p50 TTFT of a cell from its own samples (the ratio's numerator or denominator); a failed
// cell has none.
double TtftP50(const CellAnalysis& c) {
  return c.run->error.empty() && c.ttft_p50_ci.Valid() ? c.ttft_p50_ci.estimate : NAN;
}

std::string Verdict(const ColocatedComparison& c) {
  if (c.comparable()) return c.ttft_p50.Valid() ? "ok" : "too few requests";
  return absl::StrCat("excluded: ", c.Exclusion());
}

// CSV and JSON numbers: NaN as empty / null.
std::string Csv(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream out;
  out << v;
  return out.str();
}
nlohmann::json Json(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
nlohmann::json Json(const Ratio& r) {
  return {{"estimate", Json(r.estimate)}, {"lo", Json(r.lo)}, {"hi", Json(r.hi)}};
}

}  // namespace

std::string ColocatedTable(const std::vector<ColocatedComparison>& comparisons) {
  std::string md = MarkdownHeader(
      {"P/D backend", "workload", "rate", "TTFT p50 P/D / colocated (ms)",
       "TTFT p50 ratio [95% CI]", "TTFT mean ratio [95% CI]", "TPOT p50 ratio [95% CI]",
       "goodput P/D / colocated (req/s)", "within SLOs P/D / colocated", "n (P/D, colocated)",
       "verdict"});
  for (const ColocatedComparison& c : comparisons) {
    const ServingRun& r = *c.pd->run;
    md += MarkdownRow(
        {r.backend, WorkloadName(r), RateName(r.request_rate),
         absl::StrCat(Number("%.2f", TtftP50(*c.pd)), " / ", Number("%.2f", TtftP50(*c.colocated))),
         FormatRatio(c.ttft_p50), FormatRatio(c.ttft_mean), FormatRatio(c.tpot_p50),
         absl::StrCat(Number("%.3f", c.pd_goodput.PerSecond()), " / ",
                      Number("%.3f", c.colocated_goodput.PerSecond())),
         absl::StrCat(Percent(c.pd_goodput.Attainment()), " / ",
                      Percent(c.colocated_goodput.Attainment())),
         absl::StrCat(c.pd->samples.ttft_ms.size(), ", ", c.colocated->samples.ttft_ms.size()),
         Verdict(c)});
  }
  return md;
}

std::string ColocatedCsv(const std::vector<ColocatedComparison>& comparisons,
                         const loadgen::SloSpec& slos) {
  std::string csv =
      "pd_backend,input_len,output_len,request_rate,pd_ttft_p50_ms,colocated_ttft_p50_ms,"
      "ttft_p50_ratio,ttft_p50_ratio_lo,ttft_p50_ratio_hi,ttft_mean_ratio,ttft_mean_ratio_lo,"
      "ttft_mean_ratio_hi,tpot_p50_ratio,tpot_p50_ratio_lo,tpot_p50_ratio_hi,pd_goodput,"
      "colocated_goodput,pd_within_slos,colocated_within_slos,slos,comparable,excluded\n";
  for (const ColocatedComparison& c : comparisons) {
    const ServingRun& r = *c.pd->run;
    absl::StrAppend(&csv, r.backend, ",", r.input_len, ",", r.output_len, ",",
                    RateName(r.request_rate), ",", Csv(TtftP50(*c.pd)), ",",
                    Csv(TtftP50(*c.colocated)));
    for (const Ratio* ratio : {&c.ttft_p50, &c.ttft_mean, &c.tpot_p50}) {
      absl::StrAppend(&csv, ",", Csv(ratio->estimate), ",", Csv(ratio->lo), ",", Csv(ratio->hi));
    }
    absl::StrAppend(&csv, ",", Csv(c.pd_goodput.PerSecond()), ",",
                    Csv(c.colocated_goodput.PerSecond()), ",", Csv(c.pd_goodput.Attainment()),
                    ",", Csv(c.colocated_goodput.Attainment()), ",\"", DescribeSlos(slos), "\",",
                    c.comparable() ? 1 : 0, ",\"", c.Exclusion(), "\"\n");
  }
  return csv;
}

nlohmann::json ColocatedJson(const std::vector<ColocatedComparison>& comparisons,
                             const loadgen::SloSpec& slos) {
  nlohmann::json out = nlohmann::json::array();
  for (const ColocatedComparison& c : comparisons) {
    const ServingRun& r = *c.pd->run;
    out.push_back({{"pd_backend", r.backend},
                   {"input_len", r.input_len},
                   {"output_len", r.output_len},
                   {"request_rate", RateName(r.request_rate)},
                   {"pd_ttft_p50_ms", Json(TtftP50(*c.pd))},
                   {"colocated_ttft_p50_ms", Json(TtftP50(*c.colocated))},
                   {"ttft_p50_ratio", Json(c.ttft_p50)},
                   {"ttft_mean_ratio", Json(c.ttft_mean)},
                   {"tpot_p50_ratio", Json(c.tpot_p50)},
                   {"pd_goodput", Json(c.pd_goodput.PerSecond())},
                   {"colocated_goodput", Json(c.colocated_goodput.PerSecond())},
                   {"pd_within_slos", Json(c.pd_goodput.Attainment())},
                   {"colocated_within_slos", Json(c.colocated_goodput.Attainment())},
                   {"slos", DescribeSlos(slos)},
                   {"comparable", c.comparable()},
                   {"excluded", c.Exclusion()}});
  }
  return out;
}

}  // namespace pdserve::bench
