#include "router/router_metrics.h"

#include "common/status_macros.h"

namespace pdserve::router {

const metrics::BucketBounds& TtftBuckets() {
  static const metrics::BucketBounds b = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                          0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                          20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
  return b;
}

const metrics::BucketBounds& InterTokenBuckets() {
  static const metrics::BucketBounds b = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                          0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
  return b;
}

const metrics::BucketBounds& RequestLatencyBuckets() {
  static const metrics::BucketBounds b = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                          5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                          60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
  return b;
}

const metrics::BucketBounds& TtftStageBuckets() {
  static const metrics::BucketBounds b = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                          0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1.0,
                                          2.5,     5.0,    10.0,    25.0,   60.0,  160.0,  640.0};
  return b;
}

std::string RejectReason(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
      return "invalid_request";
    case absl::StatusCode::kResourceExhausted:
      return "queue_full";
    case absl::StatusCode::kUnavailable:
      return "no_workers";
    case absl::StatusCode::kAlreadyExists:
      return "duplicate_request_id";
    case absl::StatusCode::kDeadlineExceeded:
      return "queue_timeout";
    case absl::StatusCode::kCancelled:
      return "cancelled_while_queued";
    default:
      return "other";
  }
}

absl::StatusOr<std::unique_ptr<RouterMetrics>> RouterMetrics::Create(
    metrics::Registry& r, const std::string& model_name) {
  std::unique_ptr<RouterMetrics> m(new RouterMetrics());
  m->model_name_ = model_name;
  const std::vector<std::string> model = {"model_name"};
  const std::initializer_list<absl::string_view> value = {model_name};
  auto counter = [&](const std::string& name, const std::string& help) {
    return r.AddCounter(name, help, model);
  };
  auto histogram = [&](const std::string& name, const std::string& help,
                       const metrics::BucketBounds& bounds) {
    return r.AddHistogram(name, help, model, bounds);
  };
  ASSIGN_OR_RETURN(metrics::CounterFamily * prompt,
                   counter("vllm:prompt_tokens_total", "Number of prefill tokens processed."));
  ASSIGN_OR_RETURN(m->prompt_tokens_, prompt->Get(value));
  ASSIGN_OR_RETURN(
      metrics::CounterFamily * generation,
      counter("vllm:generation_tokens_total", "Number of generation tokens processed."));
  ASSIGN_OR_RETURN(m->generation_tokens_, generation->Get(value));
  ASSIGN_OR_RETURN(m->success_, r.AddCounter("vllm:request_success_total",
                                             "Count of successfully processed requests.",
                                             {"model_name", "finished_reason"}));
  ASSIGN_OR_RETURN(
      m->rejected_,
      r.AddCounter("pdserve:requests_rejected_total",
                   "Requests the router turned away before they ran, by reason.", {"reason"}));
  // Known label values start at 0, so that a dashboard's rate() sees their first increment.
  for (absl::StatusCode code :
       {absl::StatusCode::kInvalidArgument, absl::StatusCode::kResourceExhausted,
        absl::StatusCode::kUnavailable, absl::StatusCode::kAlreadyExists,
        absl::StatusCode::kDeadlineExceeded}) {
    RETURN_IF_ERROR(m->rejected_->Get({RejectReason(code)}).status());
  }
  for (const char* reason : {"length", "stop"}) {
    RETURN_IF_ERROR(m->success_->Get({model_name, reason}).status());
  }
  struct H {
    metrics::Histogram** out;
    const char* name;
    const char* help;
    const metrics::BucketBounds& bounds;
  };
  const H histograms[] = {
      {&m->ttft_, "vllm:time_to_first_token_seconds",
       "Histogram of time to first token in seconds.", TtftBuckets()},
      {&m->itl_, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
       InterTokenBuckets()},
      {&m->tpot_, "vllm:request_time_per_output_token_seconds",
       "Histogram of time_per_output_token_seconds per request.", InterTokenBuckets()},
      {&m->e2e_, "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
       RequestLatencyBuckets()},
      {&m->queue_, "vllm:request_queue_time_seconds",
       "Histogram of time spent in WAITING phase for request.", RequestLatencyBuckets()},
      {&m->prefill_, "vllm:request_prefill_time_seconds",
       "Histogram of time spent in PREFILL phase for request (KV transfer included).",
       RequestLatencyBuckets()},
      {&m->decode_, "vllm:request_decode_time_seconds",
       "Histogram of time spent in DECODE phase for request.", RequestLatencyBuckets()},
  };
  for (const H& h : histograms) {
    ASSIGN_OR_RETURN(metrics::HistogramFamily * family, histogram(h.name, h.help, h.bounds));
    ASSIGN_OR_RETURN(*h.out, family->Get(value));
  }
  ASSIGN_OR_RETURN(
      metrics::HistogramFamily * stages,
      r.AddHistogram("pdserve:ttft_stage_seconds",
                     "Time to first token split into stages that add up to it (queue, allocate, "
                     "dispatch, prefill, kv_transfer, decode_admit, first_step, relay).",
                     {"model_name", "stage"}, TtftStageBuckets()));
  // Every stage's series exists from the start, so that a dashboard's stacked panel shows all
  // of them (at 0) before the first request.
  for (int i = 0; i < kNumTtftStages; ++i) {
    ASSIGN_OR_RETURN(m->ttft_stage_[i], stages->Get({model_name, TtftStageNames()[i]}));
  }
  struct G {
    metrics::Gauge** out;
    const char* name;
    const char* help;
    bool per_model;
  };
  const G gauges[] = {
      {&m->running_, "vllm:num_requests_running",
       "Number of requests in model execution batches (prefill, KV transfer or decode).", true},
      {&m->waiting_, "vllm:num_requests_waiting", "Number of requests waiting to be processed.",
       true},
      {&m->kv_usage_, "vllm:kv_cache_usage_perc",
       "KV-cache usage of the decode workers: used blocks / all blocks (1 means 100 percent).",
       true},
      {&m->scheduler_queue_, "pdserve:scheduler_queue_length",
       "Requests in the scheduler's waiting queue (not counting ones deferred for room).", false},
  };
  for (const G& g : gauges) {
    ASSIGN_OR_RETURN(metrics::GaugeFamily * family,
                     r.AddGauge(g.name, g.help, g.per_model ? model : std::vector<std::string>{}));
    if (g.per_model) {
      ASSIGN_OR_RETURN(*g.out, family->Get(value));
    } else {
      ASSIGN_OR_RETURN(*g.out, family->Get({}));
    }
  }
  return m;
}

void RouterMetrics::OnFinished(const Finished& f) {
  constexpr double kUs = 1e-6;
  e2e_->Observe(static_cast<double>(f.last_token_us - f.arrival_us) * kUs);
  queue_->Observe(static_cast<double>(f.scheduled_us - f.arrival_us) * kUs);
  prefill_->Observe(static_cast<double>(f.first_token_us - f.scheduled_us) * kUs);
  const double decode_s = static_cast<double>(f.last_token_us - f.first_token_us) * kUs;
  decode_->Observe(decode_s);
  if (f.generated > 1) tpot_->Observe(decode_s / (f.generated - 1));
  if (const auto stages = SplitTtft(f.ttft_events)) {
    for (int i = 0; i < kNumTtftStages; ++i) {
      ttft_stage_[i]->Observe(static_cast<double>((*stages)[i]) * kUs);
    }
  }
  // The reason comes from a decode worker: a bounded family refuses a flood of new values.
  if (absl::StatusOr<metrics::Counter*> c = success_->Get({model_name_, f.finish_reason}); c.ok()) {
    (*c)->Inc();
  }
}

void RouterMetrics::OnRejected(absl::StatusCode code) {
  if (absl::StatusOr<metrics::Counter*> c = rejected_->Get({RejectReason(code)}); c.ok()) {
    (*c)->Inc();
  }
}

void RouterMetrics::Set(const State& s) {
  running_->Set(s.running);
  waiting_->Set(s.waiting);
  scheduler_queue_->Set(s.scheduler_queue);
  kv_usage_->Set(s.kv_usage);
}

}  // namespace pdserve::router
