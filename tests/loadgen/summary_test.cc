#include "loadgen/summary.h"

#include <map>
#include <string>

#include "loadgen/result_table.h"

#include "gtest/gtest.h"

namespace pdserve::loadgen {
namespace {

// A successful request: `chunks` token events of one token each, first at ttft, then every gap.
RequestRecord Ok(double send_s, double ttft_s, double gap_s, int chunks, int input_len = 10) {
  RequestRecord r;
  r.success = true;
  r.send_s = send_s;
  r.input_len = input_len;
  r.max_tokens = chunks;
  r.output_tokens = chunks;
  r.ttft_s = ttft_s;
  r.e2el_s = ttft_s + gap_s * (chunks - 1);
  r.event_tokens.assign(chunks, 1);
  r.itl_s.assign(chunks - 1, gap_s);
  return r;
}

RequestRecord Failed(const std::string& error) {
  RequestRecord r;
  r.input_len = 10;
  r.error = error;
  return r;
}

const std::vector<double> kPercentiles = {50, 99};

TEST(SummaryTest, ThroughputsCountCompletedRequestsOnly) {
  std::vector<RequestRecord> rs = {Ok(0, 0.1, 0.01, 5), Ok(0, 0.2, 0.01, 3),
                                   Failed("UNAVAILABLE: x")};
  const BenchmarkMetrics m = ComputeMetrics(rs, 2.0, kPercentiles, {});
  EXPECT_EQ(m.completed, 2);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_input_tokens, 20);
  EXPECT_EQ(m.total_output_tokens, 8);
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.0);
  EXPECT_DOUBLE_EQ(m.output_throughput, 4.0);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 14.0);
}

TEST(SummaryTest, ErrorsAreCountedByReason) {
  std::vector<RequestRecord> rs = {Failed("UNAVAILABLE: gone"), Failed("UNAVAILABLE: gone"),
                                   Failed("DEADLINE_EXCEEDED: late"), Ok(0, 0.1, 0.1, 2)};
  const BenchmarkMetrics m = ComputeMetrics(rs, 1.0, kPercentiles, {});
  EXPECT_EQ(m.failed, 3);
  ASSERT_EQ(m.error_counts.size(), 2u);
  EXPECT_EQ(m.error_counts.at("UNAVAILABLE: gone"), 2);
  EXPECT_EQ(m.error_counts.at("DEADLINE_EXCEEDED: late"), 1);
}

TEST(SummaryTest, TpotSkipsSingleTokenRequestsAndItlPoolsEveryGap) {
  // TPOT of the first: (0.1 + 4 * 0.02 - 0.1) / 4 = 0.02 s; the one-token request has none.
  std::vector<RequestRecord> rs = {Ok(0, 0.1, 0.02, 5), Ok(0, 0.3, 0.0, 1), Ok(0, 0.2, 0.04, 2)};
  const BenchmarkMetrics m = ComputeMetrics(rs, 1.0, kPercentiles, {});
  EXPECT_EQ(m.tpot_ms.count, 2u);
  EXPECT_NEAR(m.tpot_ms.mean, 30.0, 1e-9);
  EXPECT_EQ(m.itl_ms.count, 5u);  // 4 + 0 + 1 gaps
  EXPECT_NEAR(m.itl_ms.max, 40.0, 1e-9);
  EXPECT_EQ(m.ttft_ms.count, 3u);
  EXPECT_NEAR(m.ttft_ms.median, 200.0, 1e-9);
  EXPECT_NEAR(m.e2el_ms.max, 300.0, 1e-9);
}

TEST(SummaryTest, GoodputIsUnsetWithoutSlos) {
  const BenchmarkMetrics m = ComputeMetrics({Ok(0, 0.1, 0.01, 3)}, 1.0, kPercentiles, {});
  EXPECT_FALSE(m.request_goodput.has_value());
}

TEST(SummaryTest, GoodputCountsOnlyRequestsMeetingEverySlo) {
  SloSpec slos;
  slos.ttft_ms = 150;
  slos.tpot_ms = 25;
  std::vector<RequestRecord> rs = {
      Ok(0, 0.1, 0.02, 5),   // meets both
      Ok(0, 0.2, 0.02, 5),   // TTFT too high
      Ok(0, 0.1, 0.05, 5),   // TPOT too high
      Ok(0, 0.15, 0.0, 1),   // one token: TPOT counts as 0, TTFT equal to the SLO meets it
      Failed("UNAVAILABLE: x")};
  const BenchmarkMetrics m = ComputeMetrics(rs, 4.0, kPercentiles, slos);
  EXPECT_EQ(m.good_requests, 2);
  ASSERT_TRUE(m.request_goodput.has_value());
  EXPECT_DOUBLE_EQ(*m.request_goodput, 0.5);
}

TEST(SummaryTest, PeakTokensAndConcurrencyUseOneSecondBuckets) {
  // Request A: sent at 0, tokens at 0.5, 0.9, 1.3, 1.7. Request B: sent at 1.0, tokens at 1.2,
  // 1.4. Bucket [1, 2) holds 4 tokens; both requests touch bucket 1.
  std::vector<RequestRecord> rs = {Ok(0.0, 0.5, 0.4, 4), Ok(1.0, 0.2, 0.2, 2)};
  const BenchmarkMetrics m = ComputeMetrics(rs, 2.0, kPercentiles, {});
  EXPECT_DOUBLE_EQ(m.max_output_tokens_per_s, 4.0);
  EXPECT_EQ(m.max_concurrent_requests, 2);
}

// vllm's current max_concurrent_requests: the most requests in flight at one instant, not the
// most that touched one 1 s bucket. A ends at 0.5, B starts at 0.6: never two at once.
TEST(SummaryTest, PeakConcurrencyIsAtOneInstantAndIgnoresFailedRequests) {
  RequestRecord failed = Failed("UNAVAILABLE: x");
  failed.send_s = 0.1;
  std::vector<RequestRecord> rs = {Ok(0.0, 0.1, 0.1, 5), Ok(0.6, 0.1, 0.1, 3), failed};
  const BenchmarkMetrics m = ComputeMetrics(rs, 1.0, kPercentiles, {});
  EXPECT_EQ(m.max_concurrent_requests, 1);
  EXPECT_DOUBLE_EQ(m.max_output_tokens_per_s, 8.0);  // every token inside [0, 1)
  // A request ending exactly when another starts does not overlap it (half-open intervals).
  const BenchmarkMetrics touching =
      ComputeMetrics({Ok(0.0, 0.5, 0.0, 1), Ok(0.5, 0.5, 0.0, 1)}, 1.0, kPercentiles, {});
  EXPECT_EQ(touching.max_concurrent_requests, 1);
}

TEST(SummaryTest, ClientQueueTimeIsTheWaitBetweenReleaseAndSend) {
  RequestRecord a = Ok(0.5, 0.1, 0.01, 3);
  a.arrival_s = 0.2;  // released at 0.2, sent at 0.5: 300 ms waiting for a slot
  RequestRecord b = Ok(1.0, 0.1, 0.01, 3);
  b.arrival_s = 1.0;
  const BenchmarkMetrics m = ComputeMetrics({a, b}, 2.0, kPercentiles, {});
  EXPECT_EQ(m.client_queue_time_ms.count, 2u);
  EXPECT_NEAR(m.client_queue_time_ms.max, 300.0, 1e-9);
  EXPECT_NEAR(m.client_queue_time_ms.mean, 150.0, 1e-9);
  EXPECT_NEAR(m.e2el_including_client_queue_ms.max, 300.0 + 120.0, 1e-9);
}

TEST(SummaryTest, TimelineAggregatesGiveTransferShareOfTtft) {
  RequestRecord a = Ok(0, 0.010, 0.001, 2);
  a.timeline = {.present = true, .queue_ms = 1, .prefill_ms = 4, .transfer_ms = 2,
                .decode_ms = 3, .kv_bytes = 2'000'000};
  RequestRecord b = Ok(0, 0.030, 0.001, 2);
  b.timeline = {.present = true, .queue_ms = 3, .prefill_ms = 6, .transfer_ms = 6,
                .decode_ms = 5, .kv_bytes = 6'000'000};
  const BenchmarkMetrics m = ComputeMetrics({a, b, Ok(0, 0.5, 0.1, 2)}, 1.0, kPercentiles, {});
  ASSERT_TRUE(m.timeline.has_value());
  EXPECT_EQ(m.timeline->count, 2u);
  EXPECT_DOUBLE_EQ(m.timeline->queue_ms.mean, 2.0);
  EXPECT_DOUBLE_EQ(m.timeline->transfer_ms.mean, 4.0);
  EXPECT_DOUBLE_EQ(m.timeline->mean_kv_bytes, 4e6);
  EXPECT_NEAR(m.timeline->transfer_share_of_ttft, 8.0 / 40.0, 1e-12);  // (2 + 6) / (10 + 30)
  EXPECT_NEAR(m.timeline->kv_transfer_gbps, 8e6 / 8e-3 / 1e9, 1e-12);
}

// --transfer auto: each request's timeline names the engine its pair used; the summary counts
// them and the table prints the counts.
TEST(SummaryTest, RequestsAreCountedPerTransferBackendAndPrinted) {
  std::vector<RequestRecord> rs;
  for (const char* backend : {"auto/local", "auto/ucx", "auto/local", ""}) {
    RequestRecord r = Ok(0, 0.010, 0.001, 2);
    r.timeline = {.present = true, .transfer_ms = 1, .kv_bytes = 100};
    r.timeline.transfer_backend = backend;
    r.timeline.transports = std::string(backend) == "auto/ucx" ? "tcp/eth0" : "";
    rs.push_back(r);
  }
  BenchmarkResult result;
  result.metrics = ComputeMetrics(rs, 1.0, kPercentiles, {});
  ASSERT_TRUE(result.metrics.timeline.has_value());
  const std::map<std::string, int64_t> want = {{"auto/local", 2}, {"auto/ucx", 1}};
  EXPECT_EQ(result.metrics.timeline->transfer_backends, want);
  EXPECT_NE(FormatResultTable(result).find("auto/local 2, auto/ucx 1"), std::string::npos)
      << FormatResultTable(result);
  EXPECT_EQ(result.metrics.timeline->transports, (std::map<std::string, int64_t>{{"tcp/eth0", 1}}));
  EXPECT_NE(FormatResultTable(result).find("KV transports: tcp/eth0 (1 requests)"),
            std::string::npos);
}

TEST(SummaryTest, NoTimelineWhenTheServerSentNone) {
  const BenchmarkMetrics m = ComputeMetrics({Ok(0, 0.1, 0.01, 3)}, 1.0, kPercentiles, {});
  EXPECT_FALSE(m.timeline.has_value());
}

}  // namespace
}  // namespace pdserve::loadgen
