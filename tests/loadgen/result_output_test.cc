#include <cmath>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "loadgen/result_csv.h"
#include "loadgen/result_json.h"
#include "loadgen/result_table.h"

namespace pdserve::loadgen {
namespace {

BenchmarkResult SampleResult() {
  BenchmarkResult result;
  result.options.percentiles = {50, 90, 95, 99, 99.9};
  result.options.seed = 3;
  result.date = "20250101-120000";
  result.model_id = "pdserve/tiny";
  result.duration_s = 2.0;
  RequestRecord ok;
  ok.index = 0;
  ok.request_id = "lg-0";
  ok.success = true;
  ok.input_len = 12;
  ok.max_tokens = 3;
  ok.output_tokens = 3;
  ok.tokens = {5, 6, 7};
  ok.ttft_s = 0.01;
  ok.e2el_s = 0.03;
  ok.itl_s = {0.01, 0.01};
  ok.event_tokens = {1, 1, 1};
  ok.timeline = {.present = true, .queue_ms = 1, .prefill_ms = 2, .transfer_ms = 0.5,
                 .decode_ms = 20, .kv_bytes = 4096, .prefill_worker = "p0",
                 .decode_worker = "d0"};
  RequestRecord bad;
  bad.index = 1;
  bad.request_id = "lg-1";
  bad.input_len = 12;
  bad.max_tokens = 3;
  bad.error = "UNAVAILABLE: worker d0 gone, \"bye\"";
  result.requests = {ok, bad};
  result.generator.requested_rate = kInfiniteRate;
  result.generator.scheduled_rate = INFINITY;
  result.generator.send_rate = 1000;
  result.generator.send_lag_ms = Summarize({0.1, 0.2}, {50, 99});
  result.metrics = ComputeMetrics(result.requests, result.duration_s,
                                  result.options.percentiles, result.options.goodput);
  return result;
}

TEST(ResultJsonTest, HasEveryVllmFieldWithItsType) {
  const nlohmann::ordered_json j = ResultToJson(SampleResult());
  for (const char* key : {"date", "backend", "model_id"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_string()) << key;
  }
  for (const char* key : {"num_prompts", "completed", "failed", "total_input_tokens",
                          "total_output_tokens", "max_concurrent_requests"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_number_integer()) << key;
  }
  for (const char* key : {"burstiness", "duration", "request_throughput", "output_throughput",
                          "total_token_throughput", "max_output_tokens_per_s"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_number()) << key;
  }
  for (const char* metric : {"ttft", "tpot", "itl", "e2el"}) {
    for (const std::string prefix : {"mean_", "median_", "std_", "p50_", "p90_", "p95_", "p99_",
                                     "p99.9_"}) {
      const std::string key = prefix + metric + "_ms";
      ASSERT_TRUE(j.contains(key)) << key;
      EXPECT_TRUE(j[key].is_number()) << key;
    }
  }
  for (const char* key : {"input_lens", "output_lens", "ttfts", "itls", "generated_texts",
                          "errors"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    ASSERT_TRUE(j[key].is_array()) << key;
    EXPECT_EQ(j[key].size(), 2u) << key;
  }
  EXPECT_TRUE(j["itls"][0].is_array());
  EXPECT_EQ(j["itls"][0].size(), 2u);
  EXPECT_TRUE(j["generated_texts"][0].is_string());
  EXPECT_EQ(j["generated_texts"][0], "5 6 7");
  EXPECT_EQ(j["errors"][0], "");
  EXPECT_EQ(j["errors"][1], "UNAVAILABLE: worker d0 gone, \"bye\"");
  EXPECT_EQ(j["output_lens"][1], 0);
}

TEST(ResultJsonTest, InfiniteRateIsTheStringInfAndUnsetValuesAreNull) {
  const nlohmann::ordered_json j = ResultToJson(SampleResult());
  EXPECT_EQ(j["request_rate"], "inf");
  EXPECT_TRUE(j["request_goodput"].is_null());
  EXPECT_TRUE(j["max_concurrency"].is_null());
  EXPECT_TRUE(j["label"].is_null());
  EXPECT_TRUE(j["scheduled_request_rate"].is_null());  // all due at once
}

TEST(ResultJsonTest, FiniteRateAndGoodputAreNumbers) {
  BenchmarkResult r = SampleResult();
  r.generator.requested_rate = 4;
  r.options.max_concurrency = 8;
  r.options.goodput.ttft_ms = 100;
  r.metrics = ComputeMetrics(r.requests, r.duration_s, r.options.percentiles, r.options.goodput);
  const nlohmann::ordered_json j = ResultToJson(r);
  EXPECT_EQ(j["request_rate"], 4.0);
  EXPECT_EQ(j["max_concurrency"], 8);
  EXPECT_DOUBLE_EQ(j["request_goodput"].get<double>(), 0.5);
  // vllm's compute_result_filename: the rate as Python prints a float, the model's last component.
  EXPECT_EQ(DefaultResultFilename(r), "pdserve-4.0qps-concurrency8-tiny-20250101-120000.json");
  r.options.label = "ucx-in128";
  r.generator.requested_rate = 0.25;
  r.options.max_concurrency = 0;
  EXPECT_EQ(DefaultResultFilename(r), "ucx-in128-0.25qps-tiny-20250101-120000.json");
}

TEST(ResultJsonTest, CarriesServerTimelineExtrasAndErrorCounts) {
  const nlohmann::ordered_json j = ResultToJson(SampleResult());
  EXPECT_DOUBLE_EQ(j["mean_kv_transfer_ms"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["mean_queue_ms"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["mean_prefill_ms"].get<double>(), 2.0);
  EXPECT_TRUE(j["p99_kv_transfer_ms"].is_number());
  EXPECT_NEAR(j["kv_transfer_share_of_ttft"].get<double>(), 0.05, 1e-12);
  EXPECT_EQ(j["server_timelines"][0]["decode_worker"], "d0");
  EXPECT_TRUE(j["server_timelines"][1].is_null());
  EXPECT_EQ(j["error_counts"]["UNAVAILABLE: worker d0 gone, \"bye\""], 1);
  EXPECT_NE(j["metric_definitions"]["convention"].get<std::string>().find("vllm"),
            std::string::npos);
  EXPECT_NE(j["metric_definitions"]["send_request_rate"].get<std::string>().find("send rate"),
            std::string::npos);
  EXPECT_NE(j["metric_definitions"]["request_throughput"].get<std::string>().find("served"),
            std::string::npos);
}

TEST(ResultJsonTest, ConvertsToPlainJsonForOtherComponents) {
  const nlohmann::json plain = ResultToJson(SampleResult(), /*per_request=*/false);
  EXPECT_TRUE(plain.contains("p99_ttft_ms"));
  EXPECT_FALSE(plain.contains("itls"));
}

TEST(ResultCsvTest, OneRowPerRequestWithTimelineColumns) {
  const std::string csv = FormatRequestsCsv(SampleResult());
  std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("queue_ms,prefill_ms,transfer_ms,decode_ms"), std::string::npos);
  EXPECT_NE(lines[1].find(",p0,d0,"), std::string::npos);
  // The error's comma and quotes are quoted, so the row keeps its column count.
  EXPECT_NE(lines[2].find("\"UNAVAILABLE: worker d0 gone, \"\"bye\"\"\""), std::string::npos);
}

TEST(ResultTableTest, PrintsVllmBannerSectionsAndDefinitions) {
  const std::string table = FormatResultTable(SampleResult());
  EXPECT_NE(table.find("============ Serving Benchmark Result ============"), std::string::npos);
  EXPECT_NE(table.find("Successful requests:"), std::string::npos);
  EXPECT_NE(table.find("Request rate configured (RPS):           inf"), std::string::npos);
  EXPECT_NE(table.find("P99.9 TTFT (ms):"), std::string::npos);
  EXPECT_NE(table.find("Mean KV transfer (ms):"), std::string::npos);
  EXPECT_NE(table.find("Errors by cause"), std::string::npos);
  EXPECT_NE(table.find("vllm bench serve definitions"), std::string::npos);
}

}  // namespace
}  // namespace pdserve::loadgen
