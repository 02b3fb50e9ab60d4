#include "loadgen/result_table.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace pdserve::loadgen {
namespace {

constexpr int kWidth = 50;

std::string Banner(const std::string& title, char fill) {
  const std::string padded = absl::StrCat(" ", title, " ");
  if (static_cast<int>(padded.size()) >= kWidth) return padded;
  const int left = (kWidth - static_cast<int>(padded.size())) / 2;
  const int right = kWidth - static_cast<int>(padded.size()) - left;
  return absl::StrCat(std::string(left, fill), padded, std::string(right, fill), "\n");
}

std::string Row(const std::string& label, const std::string& value) {
  return absl::StrFormat("%-40s %-10s\n", label, value);
}
std::string Row(const std::string& label, double value) {
  return Row(label, std::isfinite(value) ? absl::StrFormat("%.2f", value) : std::string("n/a"));
}
std::string Row(const std::string& label, int64_t value) {
  return Row(label, absl::StrCat(value));
}

void AddMetric(std::string& out, const std::string& title, const std::string& name,
               const Distribution& d) {
  out += Banner(title, '-');
  out += Row(absl::StrCat("Mean ", name, " (ms):"), d.mean);
  out += Row(absl::StrCat("Median ", name, " (ms):"), d.median);
  for (const auto& [p, v] : d.percentiles) {
    if (p == 50) continue;  // the median, printed above
    out += Row(absl::StrCat("P", PercentileName(p), " ", name, " (ms):"), v);
  }
  out += Row(absl::StrCat("Max ", name, " (ms):"), d.max);
}

}  // namespace

std::string FormatResultTable(const BenchmarkResult& result) {
  const BenchmarkMetrics& m = result.metrics;
  const GeneratorStats& g = result.generator;
  const LoadOptions& o = result.options;
  std::string out;
  out += Banner("Serving Benchmark Result", '=');
  out += Row("Successful requests:", int64_t{m.completed});
  out += Row("Failed requests:", int64_t{m.failed});
  out += Row("Maximum request concurrency:",
             o.max_concurrency > 0 ? absl::StrCat(o.max_concurrency) : std::string("None"));
  out += Row("Request rate configured (RPS):", RequestRateName(g.requested_rate));
  out += Row("Benchmark duration (s):", result.duration_s);
  out += Row("Total input tokens:", m.total_input_tokens);
  out += Row("Total generated tokens:", m.total_output_tokens);
  out += Row("Request throughput (req/s):", m.request_throughput);
  if (m.request_goodput) out += Row("Request goodput (req/s):", *m.request_goodput);
  out += Row("Output token throughput (tok/s):", m.output_throughput);
  out += Row("Peak output token throughput (tok/s):", m.max_output_tokens_per_s);
  out += Row("Peak concurrent requests:", int64_t{m.max_concurrent_requests});
  out += Row("Total Token throughput (tok/s):", m.total_token_throughput);
  for (const ReportedMetric& metric : ReportedMetrics(result)) {
    AddMetric(out, metric.title, metric.label, *metric.values);
  }
  if (m.timeline) {
    const TimelineMetrics& t = *m.timeline;
    out += Banner("Server timeline (where TTFT goes)", '-');
    out += Row("Requests with a timeline:", static_cast<int64_t>(t.count));
    out += Row("Mean queue (ms):", t.queue_ms.mean);
    out += Row("Mean prefill (ms):", t.prefill_ms.mean);
    out += Row("Mean KV transfer (ms):", t.transfer_ms.mean);
    for (const auto& [p, v] : t.transfer_ms.percentiles) {
      if (p == 99) out += Row("P99 KV transfer (ms):", v);
    }
    out += Row("KV transfer share of TTFT (%):", 100.0 * t.transfer_share_of_ttft);
    out += Row("Mean decode (ms):", t.decode_ms.mean);
    out += Row("Mean KV bytes per request:", static_cast<int64_t>(std::llround(t.mean_kv_bytes)));
    out += Row("KV transfer bandwidth (GB/s):", t.kv_transfer_gbps);
    if (!t.transfer_backends.empty()) {
      std::string names;
      for (const auto& [name, n] : t.transfer_backends) {
        absl::StrAppend(&names, names.empty() ? "" : ", ", LogEscaped(name), " ", n);
      }
      out += Row("KV transfer backends (requests):", names);
    }
    // One line per distinct transports line: long, so not in the table's value column.
    for (const auto& [line, n] : t.transports) {
      out += absl::StrFormat("KV transports: %s (%d requests)\n", LogEscaped(line), n);
    }
  }
  out += Banner("Load generator", '-');
  out += Row("Arrival process:", o.dataset == DatasetKind::kTrace
                                     ? std::string("trace replay")
                                     : ArrivalProcessName(o.arrival.process));
  out += Row("Scheduled arrival rate (req/s):", g.scheduled_rate);
  // How fast requests went out; how fast they were served is the request throughput above.
  out += Row("Send rate (req/s):", g.send_rate);
  out += Row("Send / scheduled:", std::isfinite(g.scheduled_rate)
                                      ? absl::StrFormat("%.4f", g.send_rate / g.scheduled_rate)
                                      : std::string("n/a (all due at once)"));
  for (const auto& [p, v] : g.send_lag_ms.percentiles) {
    out += Row(absl::StrCat("P", PercentileName(p), " send lag (ms):"), v);
  }
  out += Row("Peak requests in flight:", int64_t{g.peak_in_flight});
  if (o.num_warmups > 0) {
    out += Row("Warm-up requests (ok/failed):",
               absl::StrCat(result.warmup_completed, "/", result.warmup_failed));
  }
  if (o.verify) out += Row("Verify mismatches:", int64_t{result.verify_mismatches});
  if (!m.error_counts.empty()) {
    // One line per cause, not per request: ids and numbers are masked (ErrorCause), and one
    // full message shows what they were.
    out += Banner("Errors by cause", '-');
    for (const auto& [cause, count] : m.error_counts) {
      out += absl::StrFormat("%8d  %s\n", count, LogEscaped(cause));  // one line each
      auto example = m.error_examples.find(cause);
      if (example != m.error_examples.end() && example->second != cause) {
        out += absl::StrFormat("%8s  e.g. %s\n", "", LogEscaped(example->second));
      }
    }
  }
  out += std::string(kWidth, '=') + "\n";
  out += absl::StrCat("Metrics follow ", kMetricDefinitions, ".\n");
  return out;
}

}  // namespace pdserve::loadgen
