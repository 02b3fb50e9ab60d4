#pragma once

#include <string>
#include <vector>

#include "common/model_config.h"
#include "loadgen/load_options.h"
#include "loadgen/metrics.h"
#include "loadgen/request_record.h"
#include "loadgen/summary.h"

namespace pdserve::loadgen {

// How faithfully the generator followed its schedule. Rates are (n - 1) / (last - first) over
// the due times (scheduled) and over the actual send times (send rate), so a generator that
// keeps up has send / scheduled = 1 whatever the arrival process. These say how fast requests
// went out, not how fast they were served: that is BenchmarkMetrics::request_throughput.
struct GeneratorStats {
  int sent = 0;
  double requested_rate = 0;  // the option (inf possible); a trace's nominal rate
  double scheduled_rate = 0;  // of the due times; inf when all are due at once
  double send_rate = 0;       // of the send times
  Distribution send_lag_ms;   // send - due time, p50 and p99 (includes --max-concurrency waits)
  int peak_in_flight = 0;     // most requests outstanding at one instant
};

// One run: the options it ran with, every measured request and the derived metrics.
struct BenchmarkResult {
  LoadOptions options;
  std::string date;      // local time, "%Y%m%d-%H%M%S" as vllm
  std::string model_id;
  ModelConfig model;      // the target's model, as reported by its GetStatus
  double duration_s = 0;  // schedule start (as vllm's) -> last request finished
  std::vector<RequestRecord> requests;  // measured requests, by index (warm-ups excluded)
  BenchmarkMetrics metrics;
  GeneratorStats generator;
  int warmup_completed = 0;
  int warmup_failed = 0;
  int verify_mismatches = 0;  // requests whose tokens differ from model::ReferenceGenerate
};

// A latency metric the result reports with percentiles (`--percentile-metrics`).
struct ReportedMetric {
  std::string key;    // "ttft": mean_ttft_ms, p99_ttft_ms, ...
  std::string title;  // the table's section title, as vllm prints it
  std::string label;  // "TTFT": "Mean TTFT (ms):"
  const Distribution* values = nullptr;  // into result.metrics
};

// The metrics of options.percentile_metrics that apply to the run, in vllm's order: the
// client-queue ones only under --max-concurrency, the queue-inclusive E2E only at a finite rate.
std::vector<ReportedMetric> ReportedMetrics(const BenchmarkResult& result);

// Which definitions the numbers follow; printed under the table and stored in the JSON's
// metric_definitions (with one entry per field: loadgen/metric_definitions.h).
inline constexpr char kMetricDefinitions[] =
    "vllm bench serve definitions: TTFT = send -> first chunk carrying tokens; TPOT = (E2E - "
    "TTFT) / (output tokens - 1) per request, only when output > 1; ITL = every gap between "
    "token-carrying chunks (a chunk of k tokens is one event), pooled over requests; E2E = send "
    "-> last token chunk; std is the population std; percentiles linear-interpolated; goodput "
    "counts a request only if it meets every SLO given; request throughput (the served rate) = "
    "completed / duration, where the send rate is how fast requests went out";

}  // namespace pdserve::loadgen
