#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace pdserve::loadgen {

// Linear-interpolated percentile of ascending `sorted` values, as numpy.percentile's default:
// rank = p/100 * (n - 1), interpolated between the neighbouring values. 0 for no values.
double Percentile(const std::vector<double>& sorted, double p);

// "99" for 99, "99.9" for 99.9: the name vllm gives p<P>_<metric>_ms fields.
std::string PercentileName(double p);

// Parses "50,90,95,99" (each in [0, 100]).
absl::StatusOr<std::vector<double>> ParsePercentiles(const std::string& text);

// Summary of one metric's values. The unit is whatever the values are in. Empty input gives
// zeros, as vllm's `np.mean(x or 0)` does.
struct Distribution {
  size_t count = 0;
  double mean = 0;
  double median = 0;
  double std = 0;  // population standard deviation (numpy's default, ddof = 0)
  double min = 0;
  double max = 0;
  std::vector<std::pair<double, double>> percentiles;  // (p, value)
};
Distribution Summarize(std::vector<double> values, const std::vector<double>& percentiles);

// Service-level objectives for goodput, in milliseconds; unset ones are not checked.
struct SloSpec {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
  std::optional<double> e2el_ms;
  bool empty() const { return !ttft_ms && !tpot_ms && !e2el_ms; }
};

// Parses `--goodput` values: "ttft:200", "tpot:50", "e2el:2000" (several, or space separated in
// one string).
absl::StatusOr<SloSpec> ParseSloSpec(const std::vector<std::string>& items);

// Whether one request meets every SLO given (value <= SLO). As vllm, a request with one output
// token has TPOT 0 for this purpose.
bool MeetsSlos(const SloSpec& slos, double ttft_ms, double tpot_ms, double e2el_ms);

}  // namespace pdserve::loadgen
