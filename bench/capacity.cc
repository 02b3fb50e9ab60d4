#include "bench/capacity.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace pdserve::bench {
namespace {

double Number(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

double Round3(double v) {
  if (v <= 0) return v;
  const double scale = std::pow(10.0, 2 - std::floor(std::log10(v)));
  return std::round(v * scale) / scale;
}

}  // namespace

CapacityOptions DefaultCapacityOptions() {
  CapacityOptions o;
  o.slos.ttft_ms = 500;
  o.slos.tpot_ms = 50;
  return o;
}

loadgen::SloSpec SweepSlos(const std::vector<std::string>& slo) {
  if (!slo.empty()) {
    if (absl::StatusOr<loadgen::SloSpec> parsed = loadgen::ParseSloSpec(slo); parsed.ok()) {
      return *parsed;
    }
  }
  return DefaultCapacityOptions().slos;
}

double ServedRate(const nlohmann::json& result) {
  const double window = Number(result, "duration") - Number(result, "mean_e2el_ms") / 1e3;
  return window > 0 ? Number(result, "completed") / window : 0;
}

CapacityProbe JudgeProbe(double rate, const nlohmann::json& result, const CapacityOptions& o) {
  CapacityProbe p;
  p.rate = rate;
  p.completed = static_cast<int>(Number(result, "completed"));
  p.failed = static_cast<int>(Number(result, "failed"));
  const double throughput = Number(result, "request_throughput");
  // Without SLOs every completed request counts as good.
  const double goodput = o.slos.empty() ? throughput : Number(result, "request_goodput");
  p.attainment = throughput > 0 ? goodput / throughput : 0;
  // Served against sent, both over the arrival window: completions / (duration - mean E2E)
  // (duration runs from the first send to the last completion, so one mean request time past
  // the last send when nothing queued; a growing queue makes the last requests slower than the
  // mean and the ratio drop), against the rate the load generator really sent (a short
  // Poisson probe's own rate differs from the nominal one by tens of percent).
  double sent = Number(result, "send_request_rate");
  if (sent <= 0) sent = rate;
  p.served_ratio = sent > 0 && std::isfinite(sent) ? ServedRate(result) / sent : 0;
  p.holds = p.failed == 0 && p.completed > 0 && p.attainment >= o.min_attainment &&
            p.served_ratio >= o.min_served_ratio;
  return p;
}

int ProbePrompts(double rate, const CapacityOptions& o) {
  const double n = std::round(rate * o.probe_seconds);
  return static_cast<int>(std::clamp(n, static_cast<double>(o.min_probe_prompts),
                                     static_cast<double>(o.max_probe_prompts)));
}

std::optional<double> CapacitySearch::NextRate() const {
  if (probes_.empty()) return o_.start_rate;
  if (failed_ == 0) {
    // Still doubling.
    const double next = probes_.back().rate * 2;
    if (next > o_.max_rate) return std::nullopt;
    return next;
  }
  if (held_ == 0 || bisections_ >= o_.bisect_steps) return std::nullopt;
  return (held_ + failed_) / 2;  // between the last that held and the first that did not
}

void CapacitySearch::Record(const CapacityProbe& probe) {
  if (failed_ != 0) ++bisections_;
  probes_.push_back(probe);
  if (probe.holds) {
    held_ = std::max(held_, probe.rate);
  } else if (failed_ == 0 || probe.rate < failed_) {
    failed_ = probe.rate;
  }
}

std::vector<double> RatesWithCapacity(const std::vector<double>& fixed, double capacity,
                                      const std::vector<double>& fractions) {
  std::vector<double> rates = fixed;
  if (capacity > 0) {
    for (double f : fractions) rates.push_back(Round3(capacity * f));
  }
  std::sort(rates.begin(), rates.end());
  std::vector<double> out;
  for (double r : rates) {
    if (out.empty() || Round3(out.back()) != Round3(r)) out.push_back(r);
  }
  return out;
}

std::string DescribeSlos(const loadgen::SloSpec& slos) {
  std::vector<std::string> parts;
  if (slos.ttft_ms) parts.push_back(absl::StrFormat("TTFT <= %g ms", *slos.ttft_ms));
  if (slos.tpot_ms) parts.push_back(absl::StrFormat("TPOT <= %g ms", *slos.tpot_ms));
  if (slos.e2el_ms) parts.push_back(absl::StrFormat("E2E <= %g ms", *slos.e2el_ms));
  return parts.empty() ? "none (every completed request counts)" : absl::StrJoin(parts, ", ");
}

}  // namespace pdserve::bench
