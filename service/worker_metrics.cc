#include "service/worker_metrics.h"

#include <algorithm>

#include "common/status_macros.h"

namespace pdserve::service {

const metrics::BucketBounds& KvTransferBuckets() {
  static const metrics::BucketBounds b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                          0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                          1.0,    2.5,     5.0,    10.0,  30.0};
  return b;
}

std::string TransportLabel(const std::string& transports) {
  std::string label = transports.substr(0, std::min(transports.find(" ("), size_t{64}));
  return label.empty() ? "unknown" : label;
}

absl::StatusOr<std::unique_ptr<WorkerMetrics>> WorkerMetrics::Create(metrics::Registry& r,
                                                                     WorkerMetricsOptions options) {
  std::unique_ptr<WorkerMetrics> m(new WorkerMetrics());
  m->options_ = std::move(options);
  const std::string& worker = m->options_.worker_id;
  const std::string& role = m->options_.role;
  ASSIGN_OR_RETURN(m->transfer_seconds_,
                   r.AddHistogram("pdserve:kv_transfer_seconds",
                                  "Seconds from submitting a request's KV batch to its completion "
                                  "(sending side).",
                                  {"worker", "backend", "transport"}, KvTransferBuckets()));
  ASSIGN_OR_RETURN(m->transfer_bytes_,
                   r.AddCounter("pdserve:kv_transfer_bytes_total",
                                "KV bytes of completed transfers (sending side).",
                                {"worker", "backend", "transport"}));
  ASSIGN_OR_RETURN(
      metrics::CounterFamily * failures,
      r.AddCounter("pdserve:kv_transfer_failures_total",
                   "KV transfers that failed or timed out (sending side).", {"worker", "backend"}));
  ASSIGN_OR_RETURN(m->transfer_failures_, failures->Get({worker, m->options_.backend}));
  ASSIGN_OR_RETURN(metrics::CounterFamily * requests,
                   r.AddCounter("pdserve:worker_requests_total",
                                "Requests this worker served (prefill: KV delivered; decode: "
                                "last token sent).",
                                {"worker", "role"}));
  ASSIGN_OR_RETURN(m->requests_, requests->Get({worker, role}));
  ASSIGN_OR_RETURN(metrics::CounterFamily * tokens,
                   r.AddCounter("pdserve:worker_generated_tokens_total",
                                "Tokens this decode worker sent.", {"worker"}));
  ASSIGN_OR_RETURN(m->generated_tokens_, tokens->Get({worker}));
  const std::vector<std::string> labels = {"worker", "role"};
  ASSIGN_OR_RETURN(metrics::GaugeFamily * running,
                   r.AddGauge("pdserve:worker_running_requests",
                              "Requests this worker is running now.", labels));
  ASSIGN_OR_RETURN(m->running_, running->Get({worker, role}));
  ASSIGN_OR_RETURN(metrics::GaugeFamily * used,
                   r.AddGauge("pdserve:kv_pool_blocks_used",
                              "KV pool blocks not free (quarantined ones included).", labels));
  ASSIGN_OR_RETURN(m->blocks_used_, used->Get({worker, role}));
  ASSIGN_OR_RETURN(metrics::GaugeFamily * total,
                   r.AddGauge("pdserve:kv_pool_blocks_total", "KV pool blocks.", labels));
  ASSIGN_OR_RETURN(m->blocks_total_, total->Get({worker, role}));
  if (role == "decode") {
    ASSIGN_OR_RETURN(metrics::GaugeFamily * usage,
                     r.AddGauge("vllm:kv_cache_usage_perc",
                                "KV-cache usage of this decode worker: used blocks / all blocks "
                                "(1 means 100 percent).",
                                {"model_name", "worker"}));
    ASSIGN_OR_RETURN(m->kv_usage_, usage->Get({m->options_.model_name, worker}));
  }
  return m;
}

void WorkerMetrics::OnTransfer(const std::string& transport, double seconds, uint64_t bytes) {
  const std::string& worker = options_.worker_id;
  if (absl::StatusOr<metrics::Histogram*> h =
          transfer_seconds_->Get({worker, options_.backend, transport});
      h.ok()) {
    (*h)->Observe(seconds);
  }
  if (absl::StatusOr<metrics::Counter*> c =
          transfer_bytes_->Get({worker, options_.backend, transport});
      c.ok()) {
    (*c)->Inc(static_cast<double>(bytes));
  }
}

void WorkerMetrics::SetCapacity(const v1::WorkerCapacity& c) {
  const uint32_t used = c.total_blocks() - std::min(c.free_blocks(), c.total_blocks());
  running_->Set(c.running_requests());
  blocks_used_->Set(used);
  blocks_total_->Set(c.total_blocks());
  if (kv_usage_ != nullptr) {
    kv_usage_->Set(c.total_blocks() == 0 ? 0 : static_cast<double>(used) / c.total_blocks());
  }
}

}  // namespace pdserve::service
