#pragma once

// `pdserve bench --find-capacity`: the highest request rate a backend sustains within its SLOs,
// per workload, found on the running cluster by short probe loads (doubling from a low rate
// until a probe fails, then bisecting between the last rate that held and the first that did
// not). A probe holds when no request failed, at least `min_attainment` of the requests met
// every SLO (the goodput definition of DistServe and `vllm bench serve --goodput`: requests
// within the SLOs), and the served rate kept up with the offered one. The sweep then adds rates
// at fixed fractions of the baseline backend's capacity to the seed's fixed rates, so every
// backend runs the same cells. Plain logic here, tested without clusters
// (tests/bench/capacity_test.cc); the probing itself is in serving_bench.cc.

#include <optional>
#include <string>
#include <vector>

#include "loadgen/metrics.h"
#include "nlohmann/json.hpp"

namespace pdserve::bench {

struct CapacityOptions {
  loadgen::SloSpec slos;         // default: TTFT 500 ms, TPOT 50 ms (interactive serving)
  double min_attainment = 0.9;   // share of requests within every SLO
  double min_served_ratio = 0.9;  // served / sent request rate (JudgeProbe)
  double start_rate = 0.5;       // req/s, doubled until a probe fails
  double max_rate = 256;         // stop doubling here (the host's limit is far below)
  int bisect_steps = 3;          // after the first failure
  double probe_seconds = 5;      // arrivals of one probe
  int min_probe_prompts = 8;
  int max_probe_prompts = 400;  // long enough at high rates for a queue to build
  std::vector<double> fractions = {0.25, 0.5, 0.75, 0.9, 1.1};
};
CapacityOptions DefaultCapacityOptions();

// The SLOs of the sweep's goodput and capacity: `--slo` as given, or the default's (TTFT 500 ms,
// TPOT 50 ms) when none is given or it does not parse (the sweep checked it before starting).
loadgen::SloSpec SweepSlos(const std::vector<std::string>& slo);

// One probe's outcome, from its loadgen result (vllm field names).
struct CapacityProbe {
  double rate = 0;           // offered, req/s
  int completed = 0;
  int failed = 0;
  double attainment = 0;     // request_goodput / request_throughput
  double served_ratio = 0;   // completions over the arrival window / the rate really sent
  bool holds = false;
};
CapacityProbe JudgeProbe(double rate, const nlohmann::json& result, const CapacityOptions& o);

// Completions per second over the arrival window of a run: completed / (duration - mean E2E).
// request_throughput (completed / duration) counts the last request's whole time against the
// rate, which in a short run (a probe, a cell of 32 prompts at 100 req/s) looks like overload.
// 0 when the result lacks the fields.
double ServedRate(const nlohmann::json& result);

// Prompts of a probe at `rate`: rate x probe_seconds within [min, max].
int ProbePrompts(double rate, const CapacityOptions& o);

// The search: NextRate until it returns nullopt, Record after each probe.
class CapacitySearch {
 public:
  explicit CapacitySearch(const CapacityOptions& o) : o_(o) {}
  std::optional<double> NextRate() const;
  void Record(const CapacityProbe& probe);
  // The highest rate that held (0: none did, even the start rate).
  double Capacity() const { return held_; }
  // The search stopped at max_rate without a failure: the capacity is at least that.
  bool Unbounded() const { return failed_ == 0 && held_ >= o_.max_rate; }
  const std::vector<CapacityProbe>& probes() const { return probes_; }

 private:
  CapacityOptions o_;
  std::vector<CapacityProbe> probes_;
  double held_ = 0;
  double failed_ = 0;  // the lowest rate that did not hold (0: none yet)
  int bisections_ = 0;
};

// The sweep's rates for one workload: the fixed ones and fractions of `capacity`, sorted, the
// same rate (to 3 significant digits) once. capacity <= 0 leaves the fixed rates.
std::vector<double> RatesWithCapacity(const std::vector<double>& fixed, double capacity,
                                      const std::vector<double>& fractions);

// "TTFT <= 500 ms, TPOT <= 50 ms"
std::string DescribeSlos(const loadgen::SloSpec& slos);

}  // namespace pdserve::bench
