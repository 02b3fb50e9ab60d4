#include "loadgen/summary.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "common/ttft_stages.h"
#include "loadgen/error_cause.h"

namespace pdserve::loadgen {
namespace {

// vllm's max_output_tokens_per_s: 1 s buckets from the first successful send. Tokens are
// counted where their chunk arrived (vllm counts chunks; with one token per chunk, as its
// OpenAI streams have, the two agree). max_concurrent_requests: a sweep over [send, end) of
// successful requests, an end before a start at the same instant.
void FillPeaks(const std::vector<RequestRecord>& requests, BenchmarkMetrics& m) {
  double start = INFINITY, end = -INFINITY;
  std::vector<std::pair<double, int>> events;
  for (const RequestRecord& r : requests) {
    if (!r.success) continue;
    start = std::min(start, r.send_s);
    end = std::max(end, r.send_s + r.e2el_s);
    events.emplace_back(r.send_s, +1);
    events.emplace_back(r.send_s + r.e2el_s, -1);
  }
  if (!(end >= start)) return;
  std::sort(events.begin(), events.end());
  int active = 0;
  for (const auto& [t, delta] : events) {
    active += delta;
    m.max_concurrent_requests = std::max(m.max_concurrent_requests, active);
  }
  const size_t buckets = static_cast<size_t>(std::ceil(end - start)) + 1;
  std::vector<double> tokens(buckets, 0.0);
  for (const RequestRecord& r : requests) {
    if (!r.success) continue;
    double t = r.send_s + r.ttft_s;
    for (size_t e = 0; e < r.event_tokens.size(); ++e) {
      if (e > 0) t += r.itl_s[e - 1];
      const auto b = static_cast<size_t>(t - start);
      if (b < buckets) tokens[b] += r.event_tokens[e];
    }
  }
  m.max_output_tokens_per_s = *std::max_element(tokens.begin(), tokens.end());
}

// Means of the values the server reported (NaN where it did not).
void FillMockAccounting(const std::vector<RequestRecord>& requests, TimelineMetrics& t) {
  struct Mean {
    double sum = 0;
    int n = 0;
    void Add(double v) {
      if (std::isnan(v)) return;
      sum += v;
      ++n;
    }
    double Get() const { return n > 0 ? sum / n : NAN; }
  } modelled_prefill, prefill_cpu, modelled_first, verify_cpu, join, first_step, control,
      model, ttft, ops, exposed, hidden;
  for (const RequestRecord& r : requests) {
    if (!r.success || !r.timeline.present) continue;
    const ServerTimeline& tl = r.timeline;
    ops.Add(tl.transfer_ops);
    modelled_prefill.Add(tl.modelled_prefill_ms);
    prefill_cpu.Add(tl.prefill_mock_cpu_ms);
    modelled_first.Add(tl.modelled_first_step_ms);
    verify_cpu.Add(tl.decode_verify_cpu_ms);
    join.Add(tl.join_ms);
    first_step.Add(tl.first_step_ms);
    control.Add(r.ControlPlaneMs());
    exposed.Add(tl.exposed_transfer_ms);
    hidden.Add(tl.kv_hidden_share);
    if (const double m = r.TtftModelMs(); !std::isnan(m)) {
      model.Add(m);
      ttft.Add(r.ttft_s * 1e3);
    }
  }
  t.mean_transfer_ops = ops.Get();
  t.mean_modelled_prefill_ms = modelled_prefill.Get();
  t.mean_prefill_mock_cpu_ms = prefill_cpu.Get();
  t.mean_modelled_first_step_ms = modelled_first.Get();
  t.mean_decode_verify_cpu_ms = verify_cpu.Get();
  t.mean_decode_join_ms = join.Get();
  t.mean_first_step_ms = first_step.Get();
  t.mean_control_plane_ms = control.Get();
  t.mean_exposed_transfer_ms = exposed.Get();
  t.mean_kv_hidden_share = hidden.Get();
  t.ttft_model_requests = model.n;
  t.mean_ttft_model_ms = model.Get();
  t.ttft_to_model_ratio = model.n > 0 && model.sum > 0 ? ttft.sum / model.sum : NAN;
}

// Means of the TTFT stages over the requests that report all of them; "other" per request is
// client TTFT - router TTFT, so that the stacked means add up to these requests' mean TTFT.
void FillTtftStages(const std::vector<RequestRecord>& requests, TimelineMetrics& t) {
  std::vector<double> sums(kNumTtftStages, 0.0);
  double other = 0;
  int n = 0;
  for (const RequestRecord& r : requests) {
    const ServerTimeline& tl = r.timeline;
    if (!r.success || !tl.present || tl.ttft_stage_ms.size() != sums.size()) continue;
    for (size_t i = 0; i < sums.size(); ++i) sums[i] += tl.ttft_stage_ms[i];
    other += r.ttft_s * 1e3 - tl.relayed_ttft_ms;
    ++n;
  }
  t.ttft_stage_requests = n;
  if (n == 0) return;
  for (double& s : sums) s /= n;
  t.mean_ttft_stage_ms = std::move(sums);
  t.mean_ttft_stage_other_ms = other / n;
}

}  // namespace

BenchmarkMetrics ComputeMetrics(const std::vector<RequestRecord>& requests, double duration_s,
                                const std::vector<double>& percentiles, const SloSpec& slos) {
  BenchmarkMetrics m;
  std::vector<double> ttft, tpot, itl, e2el, client_queue, e2el_with_queue;
  std::vector<double> queue, prefill, transfer, decode;
  double kv_bytes = 0, transfer_s = 0, transfer_ms_sum = 0, ttft_ms_sum = 0;
  std::map<std::string, int64_t> backends, transports;
  for (const RequestRecord& r : requests) {
    if (!r.success) {
      ++m.failed;
      const std::string cause = ErrorCause(r.error, r.request_id);
      ++m.error_counts[cause];
      m.error_examples.try_emplace(cause, r.error.empty() ? std::string("unknown") : r.error);
      continue;
    }
    ++m.completed;
    m.total_input_tokens += r.input_len;
    m.total_output_tokens += r.output_tokens;
    ttft.push_back(r.ttft_s * 1e3);
    e2el.push_back(r.e2el_s * 1e3);
    client_queue.push_back(r.ClientQueueS() * 1e3);
    e2el_with_queue.push_back((r.e2el_s + r.ClientQueueS()) * 1e3);
    if (r.output_tokens > 1) tpot.push_back(r.TpotS() * 1e3);
    for (double gap : r.itl_s) itl.push_back(gap * 1e3);
    if (!slos.empty() && MeetsSlos(slos, r.ttft_s * 1e3, r.TpotS() * 1e3, r.e2el_s * 1e3)) {
      ++m.good_requests;
    }
    if (r.timeline.present) {
      queue.push_back(r.timeline.queue_ms);
      prefill.push_back(r.timeline.prefill_ms);
      transfer.push_back(r.timeline.transfer_ms);
      decode.push_back(r.timeline.decode_ms);
      kv_bytes += static_cast<double>(r.timeline.kv_bytes);
      transfer_s += r.timeline.transfer_ms / 1e3;
      transfer_ms_sum += r.timeline.transfer_ms;
      ttft_ms_sum += r.ttft_s * 1e3;
      if (!r.timeline.transfer_backend.empty()) ++backends[r.timeline.transfer_backend];
      if (!r.timeline.transports.empty()) ++transports[r.timeline.transports];
    }
  }
  if (duration_s > 0) {
    m.request_throughput = m.completed / duration_s;
    m.output_throughput = static_cast<double>(m.total_output_tokens) / duration_s;
    m.total_token_throughput =
        static_cast<double>(m.total_input_tokens + m.total_output_tokens) / duration_s;
    if (!slos.empty()) m.request_goodput = m.good_requests / duration_s;
  } else if (!slos.empty()) {
    m.request_goodput = 0.0;
  }
  m.ttft_ms = Summarize(std::move(ttft), percentiles);
  m.tpot_ms = Summarize(std::move(tpot), percentiles);
  m.itl_ms = Summarize(std::move(itl), percentiles);
  m.e2el_ms = Summarize(std::move(e2el), percentiles);
  m.client_queue_time_ms = Summarize(std::move(client_queue), percentiles);
  m.e2el_including_client_queue_ms = Summarize(std::move(e2el_with_queue), percentiles);
  if (!queue.empty()) {
    TimelineMetrics t;
    t.count = queue.size();
    t.mean_kv_bytes = kv_bytes / static_cast<double>(queue.size());
    t.kv_transfer_gbps = transfer_s > 0 ? kv_bytes / transfer_s / 1e9 : 0.0;
    t.transfer_share_of_ttft = ttft_ms_sum > 0 ? transfer_ms_sum / ttft_ms_sum : 0.0;
    t.transfer_backends = std::move(backends);
    t.transports = std::move(transports);
    t.queue_ms = Summarize(std::move(queue), percentiles);
    t.prefill_ms = Summarize(std::move(prefill), percentiles);
    t.transfer_ms = Summarize(std::move(transfer), percentiles);
    t.decode_ms = Summarize(std::move(decode), percentiles);
    FillMockAccounting(requests, t);
    FillTtftStages(requests, t);
    m.timeline = std::move(t);
  }
  FillPeaks(requests, m);
  return m;
}

}  // namespace pdserve::loadgen
