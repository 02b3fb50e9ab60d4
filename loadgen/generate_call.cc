#include "loadgen/generate_call.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/ttft_stages.h"

namespace pdserve::loadgen {

GenerateCall::GenerateCall(RequestRecord* record, CallTracker* tracker, int64_t t0_ns)
    : record_(record), tracker_(tracker), t0_ns_(t0_ns) {}

void GenerateCall::Start(pdserve::v1::Router::Stub* stub,
                         const pdserve::v1::GenerateRequest* request, double timeout_s) {
  context_.set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6)));
  record_->tokens.reserve(record_->max_tokens);
  record_->itl_s.reserve(record_->max_tokens);
  record_->event_tokens.reserve(record_->max_tokens);
  stub->async()->Generate(&context_, request, this);
  StartRead(&response_);
  tracker_->OnSent();
  send_ns_ = MonotonicNanos();
  record_->send_s = static_cast<double>(send_ns_ - t0_ns_) * 1e-9;
  StartCall();
}

void GenerateCall::OnReadDone(bool ok) {
  if (!ok) return;  // end of stream: OnDone follows with the status
  const int64_t now = MonotonicNanos();
  const int n = response_.tokens_size();
  if (n > 0) {
    if (last_event_ns_ < 0) {
      record_->ttft_s = static_cast<double>(now - send_ns_) * 1e-9;
    } else {
      record_->itl_s.push_back(static_cast<double>(now - last_event_ns_) * 1e-9);
    }
    last_event_ns_ = now;
    record_->e2el_s = static_cast<double>(now - send_ns_) * 1e-9;
    record_->event_tokens.push_back(n);
    record_->tokens.insert(record_->tokens.end(), response_.tokens().begin(),
                           response_.tokens().end());
    record_->output_tokens += n;
  }
  if (record_->request_id.empty() && !response_.request_id().empty()) {
    record_->request_id = response_.request_id();
  }
  if (response_.finished()) {
    saw_finished_ = true;
    if (response_.has_timeline()) record_->timeline = TimelineFromProto(response_.timeline());
  }
  StartRead(&response_);
}

void GenerateCall::OnDone(const grpc::Status& status) {
  const int64_t now = MonotonicNanos();
  if (!status.ok()) {
    record_->error = absl::StrCat(
        absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())), ": ",
        status.error_message());
  } else if (!saw_finished_) {
    record_->error = "INCOMPLETE: stream ended without a finished chunk";
  } else if (record_->output_tokens == 0) {
    record_->error = "INCOMPLETE: finished without any token";
  }
  record_->success = record_->error.empty();
  // Last: once counted, the runner may destroy this object.
  tracker_->OnDone(record_->success, now);
}

ServerTimeline TimelineFromProto(const pdserve::v1::RequestTimeline& t) {
  ServerTimeline out;
  if (t.arrival_us() <= 0 || t.finish_us() <= 0) return out;
  auto span_ms = [](int64_t from, int64_t to) {
    return from > 0 && to >= from ? static_cast<double>(to - from) / 1e3 : 0.0;
  };
  out.present = true;
  out.queue_ms = span_ms(t.arrival_us(), t.scheduled_us());
  out.prefill_ms = span_ms(t.prefill_start_us(), t.prefill_end_us());
  out.transfer_ms = span_ms(t.transfer_start_us(), t.transfer_end_us());
  const int64_t decode_start = t.transfer_end_us() > 0 ? t.transfer_end_us() : t.prefill_end_us();
  out.decode_ms = span_ms(decode_start, t.finish_us());
  out.server_ttft_ms = span_ms(t.arrival_us(), t.first_token_us());
  out.kv_bytes = t.kv_bytes();
  out.transfer_ops = t.transfer_ops();
  out.prefill_worker = t.prefill_worker();
  out.decode_worker = t.decode_worker();
  out.transfer_backend = t.transfer_backend();
  out.transports = t.transports();
  // Proto3 cannot tell 0 from unset: 0 means "not reported" (NaN), never a measured zero.
  auto reported_ms = [](int64_t us) { return us > 0 ? static_cast<double>(us) / 1e3 : NAN; };
  auto gap_ms = [](int64_t from, int64_t to) {
    return from > 0 && to > 0 ? static_cast<double>(std::max<int64_t>(0, to - from)) / 1e3 : NAN;
  };
  out.modelled_prefill_ms = reported_ms(t.modelled_prefill_us());
  out.prefill_mock_cpu_ms = reported_ms(t.prefill_mock_cpu_us());
  out.modelled_first_step_ms = reported_ms(t.modelled_first_step_us());
  out.decode_verify_cpu_ms = reported_ms(t.decode_verify_cpu_us());
  out.dispatch_ms = gap_ms(t.arrival_us(), t.prefill_start_us());
  out.handoff_ms = gap_ms(t.prefill_end_us(), t.transfer_start_us());
  out.join_ms = gap_ms(t.transfer_end_us(), t.decode_join_us());
  out.first_step_ms = gap_ms(t.decode_join_us(), t.first_token_us());
  out.exposed_transfer_ms = span_ms(std::max(t.transfer_start_us(), t.prefill_end_us()),
                                    t.transfer_end_us());
  out.transfer_batches = t.transfer_batches();
  out.transfer_copy_wait_ms = static_cast<double>(std::max<int64_t>(0, t.transfer_copy_wait_us())) / 1e3;
  if (const auto stages = SplitTtft(TtftEventsOf(t))) {
    for (int64_t us : *stages) out.ttft_stage_ms.push_back(static_cast<double>(us) / 1e3);
    out.relayed_ttft_ms = span_ms(t.arrival_us(), t.first_token_relayed_us());
  }
  if (t.transfer_busy_us() > 0 && t.transfer_end_us() > 0) {
    out.kv_hidden_share =
        std::clamp(1.0 - out.exposed_transfer_ms * 1e3 / static_cast<double>(t.transfer_busy_us()),
                   0.0, 1.0);
  }
  return out;
}

}  // namespace pdserve::loadgen
