#include "loadgen/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace pdserve::loadgen {

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

std::string PercentileName(double p) {
  if (p == std::floor(p)) return absl::StrCat(static_cast<long long>(p));
  return absl::StrFormat("%.10g", p);
}

absl::StatusOr<std::vector<double>> ParsePercentiles(const std::string& text) {
  std::vector<double> out;
  for (absl::string_view item : absl::StrSplit(text, absl::ByAnyChar(", "), absl::SkipEmpty())) {
    double p = 0;
    if (!absl::SimpleAtod(item, &p) || p < 0 || p > 100) {
      return absl::InvalidArgumentError(
          absl::StrCat("percentile must be a number in [0, 100], got '", item, "'"));
    }
    out.push_back(p);
  }
  if (out.empty()) return absl::InvalidArgumentError("no percentiles given");
  return out;
}

Distribution Summarize(std::vector<double> values, const std::vector<double>& percentiles) {
  Distribution d;
  d.count = values.size();
  for (double p : percentiles) d.percentiles.emplace_back(p, 0.0);
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  const double n = static_cast<double>(values.size());
  d.mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double sq = 0;
  for (double v : values) sq += (v - d.mean) * (v - d.mean);
  d.std = std::sqrt(sq / n);
  d.median = Percentile(values, 50);
  d.min = values.front();
  d.max = values.back();
  for (auto& [p, v] : d.percentiles) v = Percentile(values, p);
  return d;
}

absl::StatusOr<SloSpec> ParseSloSpec(const std::vector<std::string>& items) {
  SloSpec spec;
  for (const std::string& joined : items) {
    for (absl::string_view item : absl::StrSplit(joined, ' ', absl::SkipEmpty())) {
      std::vector<std::string> kv = absl::StrSplit(item, ':');
      double ms = 0;
      if (kv.size() != 2 || !absl::SimpleAtod(kv[1], &ms) || ms < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("goodput SLO must look like ttft:MS, tpot:MS or e2el:MS, got '", item, "'"));
      }
      if (kv[0] == "ttft") {
        spec.ttft_ms = ms;
      } else if (kv[0] == "tpot") {
        spec.tpot_ms = ms;
      } else if (kv[0] == "e2el") {
        spec.e2el_ms = ms;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown goodput metric '", kv[0], "' (ttft, tpot, e2el)"));
      }
    }
  }
  return spec;
}

bool MeetsSlos(const SloSpec& slos, double ttft_ms, double tpot_ms, double e2el_ms) {
  if (slos.ttft_ms && ttft_ms > *slos.ttft_ms) return false;
  if (slos.tpot_ms && tpot_ms > *slos.tpot_ms) return false;
  if (slos.e2el_ms && e2el_ms > *slos.e2el_ms) return false;
  return true;
}

}  // namespace pdserve::loadgen
