#pragma once

// The router's Prometheus series (served on GET /metrics of its HTTP port): vLLM's names and
// buckets where a vLLM dashboard looks, so that a dashboard or autoscaler built for vLLM reads
// pdserve unchanged, and pdserve's own (`pdserve:`) for what vLLM has no name for.
//
// Fed by the request core only (router_requests.cc), so gRPC and HTTP requests count alike.
// Definitions follow vLLM v1 (vllm/v1/metrics/loggers.py, stats.py), measured on the router's
// clock as each chunk of tokens reaches it:
//   TTFT = first token chunk - arrival;  ITL = gap between two consecutive token chunks of a
//   request (one observation per chunk after the first, as vLLM observes one per engine step);
//   queue = scheduled - arrival;  prefill = first token - scheduled (with disaggregation this
//   includes the KV transfer);  decode = last token - first token;  e2e = last token - arrival;
//   TPOT = decode / (generated tokens - 1), for requests with more than one token.
// pdserve:ttft_stage_seconds{stage} splits the same TTFT into the eight stages of
// common/ttft_stages.h (queue, allocate, dispatch, prefill, kv_transfer, decode_admit,
// first_step, relay; each one's start and end event is defined there): one observation per stage
// for each finished request whose timeline has the events, so each stage's _count is the number
// of such requests and the stages' _sum add up to their TTFT _sum. Bounds read on a worker's
// clock are clamped (never negative); see that header.
// Token counters move as tokens are produced: prompt tokens once a request's prefill (and KV
// transfer) succeeded, generation tokens per chunk; request_success_total when a request ends
// finished. Gauges (running, waiting, KV usage) are read from the router's state at scrape time.

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/ttft_stages.h"
#include "metrics/registry.h"

namespace pdserve::router {

// vLLM's bucket bounds (vllm/v1/metrics/loggers.py).
const metrics::BucketBounds& TtftBuckets();
const metrics::BucketBounds& InterTokenBuckets();      // also TPOT
const metrics::BucketBounds& RequestLatencyBuckets();  // e2e, queue, prefill, decode
// pdserve's, for pdserve:ttft_stage_seconds: from 50 us, since the control plane's stages
// (allocate, relay) take tens to hundreds of microseconds, which vLLM's TTFT buckets (from 1 ms)
// would all put in their first bucket.
const metrics::BucketBounds& TtftStageBuckets();

// Why a request was turned away before it could run (pdserve:requests_rejected_total's
// `reason`): the request core's status codes, named.
std::string RejectReason(absl::StatusCode code);

class RouterMetrics {
 public:
  // Registers every router series in `registry` (which must outlive this).
  static absl::StatusOr<std::unique_ptr<RouterMetrics>> Create(metrics::Registry& registry,
                                                               const std::string& model_name);

  // Request core events (thread-safe, lock-free).
  void OnPromptDone(int prompt_tokens) { prompt_tokens_->Inc(prompt_tokens); }
  void OnTokens(int tokens) { generation_tokens_->Inc(tokens); }
  void OnFirstToken(double ttft_s) { ttft_->Observe(ttft_s); }
  void OnTokenGap(double gap_s) { itl_->Observe(gap_s); }
  // A request that ended finished; times in microseconds (router clock).
  struct Finished {
    int64_t arrival_us = 0;
    int64_t scheduled_us = 0;
    int64_t first_token_us = 0;
    int64_t last_token_us = 0;
    int generated = 0;
    std::string finish_reason;
    // The request's timeline events (common/ttft_stages.h), for the TTFT stages; a request
    // without them is not observed there.
    TtftEvents ttft_events;
  };
  void OnFinished(const Finished& f);
  // A request refused at admission or dropped from the queue (status of the core's Run).
  void OnRejected(absl::StatusCode code);

  // Scrape-time values (from the router's state, under its lock).
  struct State {
    int running = 0;
    int waiting = 0;
    int scheduler_queue = 0;
    double kv_usage = 0;  // decode workers' used / total blocks, 0..1
  };
  void Set(const State& s);

 private:
  RouterMetrics() = default;

  std::string model_name_;
  metrics::Counter* prompt_tokens_ = nullptr;
  metrics::Counter* generation_tokens_ = nullptr;
  metrics::CounterFamily* success_ = nullptr;   // {model_name, finished_reason}
  metrics::CounterFamily* rejected_ = nullptr;  // {reason}
  metrics::Histogram* ttft_ = nullptr;
  metrics::Histogram* itl_ = nullptr;
  metrics::Histogram* tpot_ = nullptr;
  metrics::Histogram* e2e_ = nullptr;
  metrics::Histogram* queue_ = nullptr;
  metrics::Histogram* prefill_ = nullptr;
  metrics::Histogram* decode_ = nullptr;
  std::array<metrics::Histogram*, kNumTtftStages> ttft_stage_{};  // {model_name, stage}
  metrics::Gauge* running_ = nullptr;
  metrics::Gauge* waiting_ = nullptr;
  metrics::Gauge* kv_usage_ = nullptr;
  metrics::Gauge* scheduler_queue_ = nullptr;
};

}  // namespace pdserve::router
