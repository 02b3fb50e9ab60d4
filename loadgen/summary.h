#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "loadgen/metrics.h"
#include "loadgen/request_record.h"

namespace pdserve::loadgen {

// Aggregates of the server timelines of successful requests (those that carried one).
struct TimelineMetrics {
  size_t count = 0;
  Distribution queue_ms, prefill_ms, transfer_ms, decode_ms;
  double mean_kv_bytes = 0;
  double kv_transfer_gbps = 0;           // sum of KV bytes / sum of transfer time, GB/s (1e9)
  double transfer_share_of_ttft = 0;     // sum of transfer time / sum of client TTFT
  double mean_transfer_ops = 0;
  // Requests per KV transfer backend as the timelines name it ("local", or per pair under
  // --transfer auto: "auto/local", "auto/ucx").
  std::map<std::string, int64_t> transfer_backends;
  // Requests per transports line of their pair (RequestTimeline.transports), where reported.
  std::map<std::string, int64_t> transports;

  // Means over the requests that reported the value (NaN when none did): the mock's own CPU
  // work next to the modelled device time, and the parts of the TTFT model (see
  // RequestRecord::TtftModelMs).
  double mean_modelled_prefill_ms = NAN;
  double mean_prefill_mock_cpu_ms = NAN;
  double mean_modelled_first_step_ms = NAN;
  double mean_decode_verify_cpu_ms = NAN;
  double mean_decode_join_ms = NAN;     // transfer end -> decode join
  double mean_first_step_ms = NAN;      // decode join -> first token
  double mean_control_plane_ms = NAN;
  // KV streamed during the prefill (requests that report it): the exposed part of the transfer
  // and the share hidden under the prefill (RequestRecord's ServerTimeline).
  double mean_exposed_transfer_ms = NAN;
  double mean_kv_hidden_share = NAN;
  // Over the requests whose TTFT model is complete: their mean model and mean TTFT / that.
  int ttft_model_requests = 0;
  double mean_ttft_model_ms = NAN;
  double ttft_to_model_ratio = NAN;
  // Where TTFT goes (common/ttft_stages.h), over the requests whose timeline splits into the
  // stages: each stage's mean (TtftStageNames' order; empty when no request split), and the
  // mean of what is left of their client TTFT after the stages (the client <-> router legs,
  // on two clocks: may be slightly negative). Stages + other = those requests' mean client TTFT.
  int ttft_stage_requests = 0;
  std::vector<double> mean_ttft_stage_ms;
  double mean_ttft_stage_other_ms = NAN;
};

// The `vllm bench serve` metrics over one run (definitions as that client computes them).
struct BenchmarkMetrics {
  int completed = 0;
  int failed = 0;
  int64_t total_input_tokens = 0;   // of completed requests
  int64_t total_output_tokens = 0;  // of completed requests
  double request_throughput = 0;    // completed / duration
  std::optional<double> request_goodput;  // requests meeting every SLO / duration; unset: no SLO
  int good_requests = 0;
  double output_throughput = 0;
  double total_token_throughput = 0;
  double max_output_tokens_per_s = 0;  // busiest 1 s bucket after the first successful send
  // vllm's (serve.py since its sweep-line peak): the most successful requests in flight at one
  // instant, each over [send, send + E2E).
  int max_concurrent_requests = 0;
  Distribution ttft_ms, tpot_ms, itl_ms, e2el_ms;
  // Of successful requests: the wait for a --max-concurrency slot, and E2E plus that wait
  // (vllm's client_queue_time and e2el_including_client_queue).
  Distribution client_queue_time_ms, e2el_including_client_queue_ms;
  // Failed requests by cause (ErrorCause: ids and numbers masked), and the first full message
  // of each cause.
  std::map<std::string, int> error_counts;
  std::map<std::string, std::string> error_examples;
  std::optional<TimelineMetrics> timeline;
};

BenchmarkMetrics ComputeMetrics(const std::vector<RequestRecord>& requests, double duration_s,
                                const std::vector<double>& percentiles, const SloSpec& slos);

}  // namespace pdserve::loadgen
