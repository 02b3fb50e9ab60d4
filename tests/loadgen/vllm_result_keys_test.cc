// The result JSON against vllm's: every key `vllm bench serve --save-result --save-detailed`
// writes, the percentile families --percentile-metrics selects, and the per-request arrays'
// values.
#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "loadgen/result_json.h"
#include "loadgen/result_table.h"

namespace pdserve::loadgen {
namespace {

// Taken from vllm-project/vllm, vllm/benchmarks/serve.py at commit
// 009e6d4a1cd6ba3fb2a9fc00f4ec06f5297232a1: main_async's result_json (setup keys) and
// benchmark()'s result dict for generation backends. Keys vllm writes only for features pdserve
// has no counterpart of are not listed: --metadata pairs (tested separately), ramp_up_*,
// rps_change_events, probe_*, spec_decode_*, diffusion_*.
constexpr const char* kVllmSetupKeys[] = {
    "date",         "endpoint_type", "backend",      "label",      "model_id",
    "tokenizer_id", "num_prompts",   "request_rate", "burstiness", "max_concurrency"};
constexpr const char* kVllmTotalsKeys[] = {
    "duration",          "completed",           "failed",
    "total_input_tokens", "total_output_tokens", "request_throughput",
    "request_goodput",   "output_throughput",   "total_token_throughput",
    "max_output_tokens_per_s", "max_concurrent_requests", "rtfx"};
// The per-request arrays (vllm drops all but latencies and queue_times without --save-detailed;
// pdserve always writes them).
constexpr const char* kVllmPerRequestKeys[] = {
    "input_lens", "output_lens", "ttfts",       "itls",           "latencies",
    "start_times", "queue_times", "generated_texts", "errors"};
// process_one_metric: mean_, median_, std_ and p<P>_ for each selected metric.
constexpr const char* kVllmStats[] = {"mean_", "median_", "std_"};

RequestRecord Ok(int index, double arrival_s, double send_s, double ttft_s, double gap_s,
                 int tokens) {
  RequestRecord r;
  r.index = index;
  r.request_id = "lg-" + std::to_string(index);
  r.success = true;
  r.input_len = 10 + index;
  r.max_tokens = tokens;
  r.output_tokens = tokens;
  r.tokens.assign(tokens, 7);
  r.scheduled_s = arrival_s;
  r.arrival_s = arrival_s;
  r.send_s = send_s;
  r.ttft_s = ttft_s;
  r.e2el_s = ttft_s + gap_s * (tokens - 1);
  r.itl_s.assign(tokens - 1, gap_s);
  r.event_tokens.assign(tokens, 1);
  return r;
}

BenchmarkResult Sample(std::vector<std::string> metrics, std::vector<double> percentiles,
                       int max_concurrency = 0, double rate = 4) {
  BenchmarkResult result;
  result.options.percentile_metrics = std::move(metrics);
  result.options.percentiles = std::move(percentiles);
  result.options.max_concurrency = max_concurrency;
  result.options.arrival.request_rate = rate;
  result.date = "20250101-120000";
  result.model_id = "pdserve/tiny";
  result.duration_s = 2.0;
  RequestRecord failed;
  failed.index = 2;
  failed.request_id = "lg-2";
  failed.input_len = 12;
  failed.arrival_s = 0.5;
  failed.send_s = 0.75;
  failed.error = "UNAVAILABLE: gone";
  // Request 1 waited 0.25 s for a concurrency slot.
  result.requests = {Ok(0, 0.0, 0.0, 0.1, 0.02, 4), Ok(1, 0.25, 0.5, 0.2, 0.05, 3), failed};
  result.generator.requested_rate = rate;
  result.metrics = ComputeMetrics(result.requests, result.duration_s, result.options.percentiles,
                                  result.options.goodput);
  return result;
}

bool Has(const nlohmann::ordered_json& j, const std::string& key) { return j.contains(key); }

TEST(ResultJsonVllmKeysTest, HasEveryKeyVllmWritesWithItsDefaultPercentileMetrics) {
  // vllm's defaults: --percentile-metrics ttft,tpot,itl --metric-percentiles 99.
  const nlohmann::ordered_json j = ResultToJson(Sample({"ttft", "tpot", "itl"}, {99}));
  for (const char* key : kVllmSetupKeys) EXPECT_TRUE(Has(j, key)) << key;
  for (const char* key : kVllmTotalsKeys) EXPECT_TRUE(Has(j, key)) << key;
  for (const char* key : kVllmPerRequestKeys) {
    ASSERT_TRUE(Has(j, key)) << key;
    EXPECT_EQ(j[key].size(), 3u) << key;
  }
  for (const std::string metric : {"ttft", "tpot", "itl"}) {
    for (const std::string stat : kVllmStats) EXPECT_TRUE(Has(j, stat + metric + "_ms")) << metric;
    EXPECT_TRUE(Has(j, "p99_" + metric + "_ms")) << metric;
    EXPECT_FALSE(Has(j, "p50_" + metric + "_ms")) << metric;  // only the percentiles asked for
  }
  // As vllm: e2el is not among the default metrics, so it has no fields (its max is pdserve's).
  for (const char* key : {"mean_e2el_ms", "median_e2el_ms", "std_e2el_ms", "p99_e2el_ms"}) {
    EXPECT_FALSE(Has(j, key)) << key;
  }
  EXPECT_TRUE(Has(j, "max_e2el_ms"));
  EXPECT_EQ(j["endpoint_type"], j["backend"]);
  EXPECT_EQ(j["tokenizer_id"], "pdserve/tiny");  // vllm: the model id unless --tokenizer
  EXPECT_EQ(j["rtfx"], 0.0);
  EXPECT_EQ(j["percentile_metrics"].get<std::vector<std::string>>(),
            (std::vector<std::string>{"ttft", "tpot", "itl"}));
}

TEST(ResultJsonVllmKeysTest, ValuesHaveVllmTypes) {
  const nlohmann::ordered_json j = ResultToJson(Sample({"ttft", "tpot", "itl", "e2el"}, {99}));
  for (const char* key : {"completed", "failed", "num_prompts", "total_input_tokens",
                          "total_output_tokens", "max_concurrent_requests"}) {
    EXPECT_TRUE(j[key].is_number_integer()) << key;
  }
  for (const char* key : {"duration", "request_throughput", "output_throughput",
                          "total_token_throughput", "max_output_tokens_per_s", "rtfx",
                          "request_rate", "burstiness", "p99_e2el_ms"}) {
    EXPECT_TRUE(j[key].is_number()) << key;
  }
  EXPECT_TRUE(j["itls"][0].is_array());
  EXPECT_TRUE(j["generated_texts"][0].is_string());
  EXPECT_TRUE(j["errors"][2].is_string());
  EXPECT_TRUE(j["request_goodput"].is_null());  // no --goodput, as vllm
  EXPECT_TRUE(j["max_concurrency"].is_null());
}

TEST(ResultJsonVllmKeysTest, PerRequestArraysHoldVllmsValues) {
  const nlohmann::ordered_json j = ResultToJson(Sample({"ttft"}, {99}, /*max_concurrency=*/2));
  // latencies: E2E of each request, 0 for a failed one (vllm's RequestFuncOutput default).
  EXPECT_NEAR(j["latencies"][0].get<double>(), 0.1 + 3 * 0.02, 1e-12);
  EXPECT_NEAR(j["latencies"][1].get<double>(), 0.2 + 2 * 0.05, 1e-12);
  EXPECT_EQ(j["latencies"][2], 0.0);
  // start_times: when each was sent; queue_times: send - release by the schedule.
  EXPECT_EQ(j["start_times"][1], 0.5);
  EXPECT_EQ(j["start_times"][2], 0.75);
  EXPECT_EQ(j["queue_times"][0], 0.0);
  EXPECT_EQ(j["queue_times"][1], 0.25);
  EXPECT_EQ(j["queue_times"][2], 0.25);
  EXPECT_EQ(j["output_lens"][2], 0);
  EXPECT_EQ(j["errors"][2], "UNAVAILABLE: gone");
}

TEST(ResultJsonVllmKeysTest, PercentileMetricsChooseTheFamiliesInJsonAndTable) {
  const BenchmarkResult r = Sample({"e2el"}, {50, 99.9});
  const nlohmann::ordered_json j = ResultToJson(r);
  for (const char* key : {"mean_e2el_ms", "median_e2el_ms", "std_e2el_ms", "p50_e2el_ms",
                          "p99.9_e2el_ms"}) {
    EXPECT_TRUE(Has(j, key)) << key;
  }
  for (const char* key : {"mean_ttft_ms", "p99.9_ttft_ms", "mean_tpot_ms", "median_itl_ms"}) {
    EXPECT_FALSE(Has(j, key)) << key;
  }
  // E2E of the two completed requests: 160 and 300 ms; p50 interpolates between them.
  EXPECT_NEAR(j["p50_e2el_ms"].get<double>(), 230.0, 1e-9);
  const std::string table = FormatResultTable(r);
  EXPECT_NE(table.find("End-to-end Latency"), std::string::npos);
  EXPECT_NE(table.find("P99.9 E2EL (ms):"), std::string::npos);
  EXPECT_EQ(table.find("Time to First Token"), std::string::npos);
  EXPECT_EQ(table.find("TTFT (ms)"), std::string::npos);
}

TEST(ResultJsonVllmKeysTest, ClientQueueMetricsOnlyUnderMaxConcurrencyAsVllm) {
  const std::vector<std::string> queue = {"client_queue_time", "e2el_including_client_queue"};
  const nlohmann::ordered_json unbounded = ResultToJson(Sample(queue, {99}));
  EXPECT_FALSE(Has(unbounded, "mean_client_queue_time_ms"));
  EXPECT_FALSE(Has(unbounded, "mean_e2el_including_client_queue_ms"));

  const nlohmann::ordered_json bounded = ResultToJson(Sample(queue, {99}, 2));
  // Over completed requests: waits of 0 and 250 ms; E2E + wait: 160 and 300 + 250 ms.
  EXPECT_NEAR(bounded["mean_client_queue_time_ms"].get<double>(), 125.0, 1e-9);
  EXPECT_NEAR(bounded["mean_e2el_including_client_queue_ms"].get<double>(), 355.0, 1e-9);

  // At an infinite rate vllm leaves out the queue-inclusive E2E.
  const nlohmann::ordered_json at_once = ResultToJson(Sample(queue, {99}, 2, kInfiniteRate));
  EXPECT_TRUE(Has(at_once, "mean_client_queue_time_ms"));
  EXPECT_FALSE(Has(at_once, "mean_e2el_including_client_queue_ms"));
  const std::string table = FormatResultTable(Sample(queue, {99}, 2));
  EXPECT_NE(table.find("Client-side Queueing"), std::string::npos);
  EXPECT_NE(table.find("Mean E2EL incl. Client Queue (ms):"), std::string::npos);
}

TEST(ResultJsonVllmKeysTest, MetadataPairsBecomeKeysButResultFieldsWin) {
  BenchmarkResult r = Sample({"ttft"}, {99});
  r.options.metadata = {{"version", "0.3.3"}, {"completed", "bogus"}};
  const nlohmann::ordered_json j = ResultToJson(r);
  EXPECT_EQ(j["version"], "0.3.3");
  EXPECT_EQ(j["completed"], 2);  // as vllm: the benchmark's own fields overwrite metadata
}

TEST(ResultJsonVllmKeysTest, SendRateAndServedRateAreSeparateFields) {
  BenchmarkResult r = Sample({"ttft"}, {99});
  r.generator.scheduled_rate = 16;
  r.generator.send_rate = 15.8;
  const nlohmann::ordered_json j = ResultToJson(r);
  EXPECT_EQ(j["send_request_rate"], 15.8);
  EXPECT_DOUBLE_EQ(j["request_throughput"].get<double>(), 1.0);  // 2 completed in 2 s
  EXPECT_FALSE(Has(j, "achieved_request_rate"));                // the old, misleading name
  EXPECT_TRUE(Has(j["metric_definitions"], "send_request_rate"));
  const std::string table = FormatResultTable(r);
  EXPECT_NE(table.find("Send rate (req/s):                       15.80"), std::string::npos);
  EXPECT_NE(table.find("Request throughput (req/s):              1.00"), std::string::npos);
}

}  // namespace
}  // namespace pdserve::loadgen
