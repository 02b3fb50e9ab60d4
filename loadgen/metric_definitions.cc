#include "loadgen/metric_definitions.h"

#include "loadgen/benchmark_result.h"

namespace pdserve::loadgen {

nlohmann::ordered_json MetricDefinitionsJson() {
  return nlohmann::ordered_json{
      {"convention", kMetricDefinitions},
      {"duration", "s, from the start of the schedule (the first request is due one gap after "
                   "it, as in vllm) to the end of the last request"},
      {"completed", "requests that streamed every token without an error"},
      {"failed", "requests that ended in an error (error_counts groups them by cause)"},
      {"request_throughput",
       "the served rate: completed / duration, req/s (vllm's); compare with send_request_rate"},
      {"request_goodput", "requests meeting every --goodput SLO / duration; null without SLOs"},
      {"output_throughput", "output tokens of completed requests / duration, tok/s"},
      {"total_token_throughput", "input + output tokens of completed requests / duration"},
      {"max_output_tokens_per_s",
       "most output tokens arriving in one 1 s bucket counted from the first successful send "
       "(vllm counts chunks; pdserve counts the tokens they carry: equal at one token a chunk)"},
      {"max_concurrent_requests",
       "most successful requests in flight at one instant, each over [send, send + E2E)"},
      {"<stat>_<metric>_ms",
       "mean, median, std (population) and p<P> (linear interpolation) of each metric named by "
       "--percentile-metrics, over completed requests; itl pools every gap of every request"},
      {"client_queue_time", "send - release by the schedule: the wait for a --max-concurrency "
                            "slot (reported only under --max-concurrency)"},
      {"e2el_including_client_queue",
       "E2E + client_queue_time (only under --max-concurrency at a finite rate)"},
      {"max_<metric>_ms", "the largest value of ttft, tpot, itl, e2el (pdserve)"},
      {"request_rate", "the configured rate (\"inf\": everything due at once)"},
      {"scheduled_request_rate", "(n - 1) / (last - first) of the due times (pdserve)"},
      {"send_request_rate",
       "the send rate: (n - 1) / (last - first) of the actual send times, req/s; how fast the "
       "generator sent, not how fast the target served (request_throughput) (pdserve)"},
      {"send_to_scheduled_rate_ratio", "send_request_rate / scheduled_request_rate: 1 when the "
                                       "generator kept its schedule (pdserve)"},
      {"<stat>_send_lag_ms", "send - due time, --max-concurrency waits included (pdserve)"},
      {"peak_in_flight_requests",
       "most requests outstanding at one instant, failed ones included (pdserve)"},
      {"input_lens", "prompt tokens sent, per request"},
      {"output_lens", "tokens received per request (0 for a failed one)"},
      {"ttfts", "s per request (0 for a failed one)"},
      {"itls", "s, the gaps of each request (empty for a failed one)"},
      {"latencies", "E2E in s per request (0 for a failed one)"},
      {"start_times", "send time in s per request, on the client's monotonic clock from the start "
                      "of the schedule (vllm: perf_counter, whose origin is arbitrary)"},
      {"queue_times", "client_queue_time in s per request"},
      {"generated_texts", "the output token ids, space separated (the mock's text)"},
      {"errors", "the error per request (\"\" on success)"},
      {"rtfx", "vllm's inverse real-time factor of audio benchmarks: always 0 here"},
      {"mean_ttft_stage_<stage>_ms",
       "where TTFT goes: the mean of each stage of common/ttft_stages.h (queue, allocate, "
       "dispatch, prefill, kv_transfer, decode_admit, first_step, relay) over the "
       "ttft_stage_requests completed requests whose server timeline has every event; the "
       "stages partition the router's TTFT (arrival -> first token relayed), worker-clock bounds "
       "clamped so that none is negative (pdserve)"},
      {"mean_ttft_stage_other_ms",
       "client TTFT - router TTFT, mean over the same requests: the client <-> router legs; the "
       "stages plus this add up to those requests' mean TTFT (two clocks: may be slightly "
       "negative) (pdserve)"},
      {"ttft_stage_requests", "completed requests whose timeline splits into the TTFT stages"},
      {"server_timelines", "per request, the server's timeline in ms (null without one); "
                           "ttft_stages_ms: its TTFT stages (pdserve)"},
      {"error_counts", "failed requests by cause: the message with request ids as <id> and "
                       "numbers as <n> (pdserve); error_examples holds one full message each"},
  };
}

}  // namespace pdserve::loadgen
