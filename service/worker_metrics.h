#pragma once

// A worker's Prometheus series (served on its --metrics-port, service/metrics_endpoint.h). Every
// series carries the worker's id, so that one Prometheus job over all workers keeps them apart:
//   pdserve:kv_transfer_seconds{worker,backend,transport}     histogram, prefill side: one
//       observation per request's KV batch, submit to completion
//   pdserve:kv_transfer_bytes_total{worker,backend,transport} counter, bytes of those batches
//   pdserve:kv_transfer_failures_total{worker,backend}        counter, batches that failed
//   pdserve:worker_requests_total{worker,role}                requests served (prefill: KV
//       delivered; decode: last token sent)
//   pdserve:worker_generated_tokens_total{worker}             decode: tokens sent
//   pdserve:worker_running_requests{worker,role}              gauge, at scrape
//   pdserve:kv_pool_blocks_used / _total{worker,role}         gauges, at scrape (quarantined
//       decode blocks count as used: they cannot be handed out)
//   vllm:kv_cache_usage_perc{model_name,worker}               decode: used / total, 0..1
// `transport` is what the backend reports it moves bytes with (TransportLabel of
// KvTransport::counters().transports: "memcpy" for local, UCX's lanes such as "tcp/lo" for ucx).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "metrics/registry.h"
#include "pdserve.pb.h"

namespace pdserve::service {

struct WorkerMetricsOptions {
  std::string worker_id;
  std::string role;  // "prefill" | "decode"
  std::string model_name;
  std::string backend;  // the transfer backend
};

// The label of a backend's transports description: the text before any " (" (the details), at
// most 64 bytes; "unknown" when empty.
std::string TransportLabel(const std::string& transports);

// KV transfer seconds: sub-millisecond local copies to multi-second transfers over TCP.
const metrics::BucketBounds& KvTransferBuckets();

class WorkerMetrics {
 public:
  // Registers the series in `registry`, which must outlive this.
  static absl::StatusOr<std::unique_ptr<WorkerMetrics>> Create(metrics::Registry& registry,
                                                               WorkerMetricsOptions options);

  // Thread-safe; a new `transport` value takes the family's lock once, then it is a lookup.
  void OnTransfer(const std::string& transport, double seconds, uint64_t bytes);
  void OnTransferFailed() { transfer_failures_->Inc(); }
  void OnRequestServed() { requests_->Inc(); }
  void OnTokens(int tokens) { generated_tokens_->Inc(tokens); }
  // The gauges, from the worker's Capacity(): the worker calls it from a registry collector
  // (Registry::AddCollector), so that a scrape reads the pool as it is.
  void SetCapacity(const v1::WorkerCapacity& c);

 private:
  WorkerMetrics() = default;

  WorkerMetricsOptions options_;
  metrics::HistogramFamily* transfer_seconds_ = nullptr;
  metrics::CounterFamily* transfer_bytes_ = nullptr;
  metrics::Counter* transfer_failures_ = nullptr;
  metrics::Counter* requests_ = nullptr;
  metrics::Counter* generated_tokens_ = nullptr;
  metrics::Gauge* running_ = nullptr;
  metrics::Gauge* blocks_used_ = nullptr;
  metrics::Gauge* blocks_total_ = nullptr;
  metrics::Gauge* kv_usage_ = nullptr;  // decode workers only
};

}  // namespace pdserve::service
