#include "loadgen/benchmark_result.h"

#include <algorithm>
#include <cmath>

namespace pdserve::loadgen {

std::vector<ReportedMetric> ReportedMetrics(const BenchmarkResult& result) {
  const BenchmarkMetrics& m = result.metrics;
  const std::vector<std::string>& selected = result.options.percentile_metrics;
  // vllm's order and section titles (serve.py's process_one_metric calls).
  const ReportedMetric all[] = {
      {"ttft", "Time to First Token", "TTFT", &m.ttft_ms},
      {"tpot", "Time per Output Token (excl. 1st token)", "TPOT", &m.tpot_ms},
      {"itl", "Inter-token Latency", "ITL", &m.itl_ms},
      {"e2el", "End-to-end Latency", "E2EL", &m.e2el_ms},
      {"client_queue_time", "Client-side Queueing", "Client Queue Time",
       &m.client_queue_time_ms},
      {"e2el_including_client_queue", "Queue-inclusive End-to-end Latency",
       "E2EL incl. Client Queue", &m.e2el_including_client_queue_ms}};
  // As vllm: the client-queue metrics exist only when --max-concurrency bounds the requests,
  // and the queue-inclusive E2E only at a finite rate (with everything due at once it is the
  // time since the start of the run).
  const bool bounded = result.options.max_concurrency > 0;
  const bool finite_rate = std::isfinite(result.generator.requested_rate);
  std::vector<ReportedMetric> out;
  for (const ReportedMetric& metric : all) {
    if (std::find(selected.begin(), selected.end(), metric.key) == selected.end()) continue;
    if (metric.key == "client_queue_time" && !bounded) continue;
    if (metric.key == "e2el_including_client_queue" && !(bounded && finite_rate)) continue;
    out.push_back(metric);
  }
  return out;
}

}  // namespace pdserve::loadgen
