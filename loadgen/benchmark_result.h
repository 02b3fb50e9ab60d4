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
// the due times (scheduled) and over the actual send times (achieved), so a generator that keeps
// up has achieved / scheduled = 1 whatever the arrival process.
struct GeneratorStats {
  int sent = 0;
  double requested_rate = 0;  // the option (inf possible); a trace's nominal rate
  double scheduled_rate = 0;  // of the due times; inf when all are due at once
  double achieved_rate = 0;   // of the send times
  Distribution send_lag_ms;   // send - due time, p50 and p99 (includes --max-concurrency waits)
  int peak_in_flight = 0;     // most requests outstanding at one instant
};

// One run: the options it ran with, every measured request and the derived metrics.
struct BenchmarkResult {
  LoadOptions options;
  std::string date;      // local time, "%Y%m%d-%H%M%S" as vllm
  std::string model_id;
  ModelConfig model;      // the target's model, as reported by its GetStatus
  double duration_s = 0;  // first send -> last request finished
  std::vector<RequestRecord> requests;  // measured requests, by index (warm-ups excluded)
  BenchmarkMetrics metrics;
  GeneratorStats generator;
  int warmup_completed = 0;
  int warmup_failed = 0;
  int verify_mismatches = 0;  // requests whose tokens differ from model::ReferenceGenerate
};

// Which definitions the numbers follow; printed under the table and stored in the JSON.
inline constexpr char kMetricDefinitions[] =
    "vllm bench serve definitions: TTFT = send -> first chunk carrying tokens; TPOT = (E2E - "
    "TTFT) / (output tokens - 1) per request, only when output > 1; ITL = every gap between "
    "token-carrying chunks (a chunk of k tokens is one event), pooled over requests; E2E = send "
    "-> last token chunk; std is the population std; percentiles linear-interpolated; goodput "
    "counts a request only if it meets every SLO given";

}  // namespace pdserve::loadgen
