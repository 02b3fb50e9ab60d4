#include "loadgen/summary.h"

#include <algorithm>
#include <cmath>

namespace pdserve::loadgen {
namespace {

// vllm's max_output_tokens_per_s and max_concurrent_requests: 1 s buckets from the first send.
// Tokens are counted where their chunk arrived (vllm counts chunks; with one token per chunk, as
// its OpenAI streams have, the two agree).
void FillBuckets(const std::vector<RequestRecord>& requests, BenchmarkMetrics& m) {
  double start = INFINITY, end = -INFINITY;
  for (const RequestRecord& r : requests) {
    start = std::min(start, r.send_s);
    if (r.success) end = std::max(end, r.send_s + r.e2el_s);
  }
  if (!(end >= start)) return;
  const size_t buckets = static_cast<size_t>(std::ceil(end - start)) + 1;
  std::vector<double> tokens(buckets, 0.0);
  std::vector<int> active(buckets, 0);
  for (const RequestRecord& r : requests) {
    if (!r.success) continue;
    double t = r.send_s + r.ttft_s;
    for (size_t e = 0; e < r.event_tokens.size(); ++e) {
      if (e > 0) t += r.itl_s[e - 1];
      const auto b = static_cast<size_t>(t - start);
      if (b < buckets) tokens[b] += r.event_tokens[e];
    }
    const auto first = static_cast<size_t>(r.send_s - start);
    const auto last = std::min(buckets - 1, static_cast<size_t>(r.send_s + r.e2el_s - start));
    for (size_t b = first; b <= last; ++b) ++active[b];
  }
  m.max_output_tokens_per_s = *std::max_element(tokens.begin(), tokens.end());
  m.max_concurrent_requests = *std::max_element(active.begin(), active.end());
}

}  // namespace

BenchmarkMetrics ComputeMetrics(const std::vector<RequestRecord>& requests, double duration_s,
                                const std::vector<double>& percentiles, const SloSpec& slos) {
  BenchmarkMetrics m;
  std::vector<double> ttft, tpot, itl, e2el;
  std::vector<double> queue, prefill, transfer, decode;
  double kv_bytes = 0, transfer_s = 0, transfer_ms_sum = 0, ttft_ms_sum = 0;
  for (const RequestRecord& r : requests) {
    if (!r.success) {
      ++m.failed;
      ++m.error_counts[r.error.empty() ? std::string("unknown") : r.error];
      continue;
    }
    ++m.completed;
    m.total_input_tokens += r.input_len;
    m.total_output_tokens += r.output_tokens;
    ttft.push_back(r.ttft_s * 1e3);
    e2el.push_back(r.e2el_s * 1e3);
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
  if (!queue.empty()) {
    TimelineMetrics t;
    t.count = queue.size();
    t.mean_kv_bytes = kv_bytes / static_cast<double>(queue.size());
    t.kv_transfer_gbps = transfer_s > 0 ? kv_bytes / transfer_s / 1e9 : 0.0;
    t.transfer_share_of_ttft = ttft_ms_sum > 0 ? transfer_ms_sum / ttft_ms_sum : 0.0;
    t.queue_ms = Summarize(std::move(queue), percentiles);
    t.prefill_ms = Summarize(std::move(prefill), percentiles);
    t.transfer_ms = Summarize(std::move(transfer), percentiles);
    t.decode_ms = Summarize(std::move(decode), percentiles);
    m.timeline = std::move(t);
  }
  FillBuckets(requests, m);
  return m;
}

}  // namespace pdserve::loadgen
