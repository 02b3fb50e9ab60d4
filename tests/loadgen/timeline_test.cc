// The server timeline as the load generator reads it: the mock's accounting fields, the gaps
// between stages, and what a field left at 0 means (not reported, never a measured zero).
#include <cmath>

#include "gtest/gtest.h"
#include "loadgen/generate_call.h"
#include "loadgen/result_csv.h"
#include "loadgen/result_json.h"
#include "loadgen/summary.h"

namespace pdserve::loadgen {
namespace {

// Arrival at 1 s; every stage 1-10 ms apart (microseconds since the epoch).
pdserve::v1::RequestTimeline FullTimeline() {
  pdserve::v1::RequestTimeline t;
  t.set_arrival_us(1'000'000);
  t.set_scheduled_us(1'000'500);
  t.set_prefill_start_us(1'001'000);   // dispatch 1 ms
  t.set_prefill_end_us(1'011'000);     // prefill 10 ms
  t.set_transfer_start_us(1'011'200);  // handoff 0.2 ms
  t.set_transfer_end_us(1'015'200);    // transfer 4 ms
  t.set_decode_join_us(1'015'500);     // join 0.3 ms
  t.set_first_token_us(1'022'500);     // first step 7 ms
  t.set_finish_us(1'100'000);
  t.set_modelled_prefill_us(9'000);
  t.set_prefill_mock_cpu_us(2'500);
  t.set_modelled_first_step_us(6'500);
  t.set_decode_verify_cpu_us(1'200);
  t.set_transfer_copy_wait_us(1'500);  // the copy threads waited 1.5 ms for a core
  return t;
}

TEST(TimelineTest, ReadsTheMockAccountingAndTheGaps) {
  const ServerTimeline t = TimelineFromProto(FullTimeline());
  ASSERT_TRUE(t.present);
  EXPECT_DOUBLE_EQ(t.modelled_prefill_ms, 9.0);
  EXPECT_DOUBLE_EQ(t.prefill_mock_cpu_ms, 2.5);
  EXPECT_DOUBLE_EQ(t.modelled_first_step_ms, 6.5);
  EXPECT_DOUBLE_EQ(t.decode_verify_cpu_ms, 1.2);
  EXPECT_DOUBLE_EQ(t.transfer_copy_wait_ms, 1.5);
  EXPECT_DOUBLE_EQ(t.dispatch_ms, 1.0);
  EXPECT_DOUBLE_EQ(t.handoff_ms, 0.2);
  EXPECT_DOUBLE_EQ(t.join_ms, 0.3);
  EXPECT_DOUBLE_EQ(t.first_step_ms, 7.0);
  EXPECT_DOUBLE_EQ(t.server_ttft_ms, 22.5);
}

TEST(TimelineTest, FieldsLeftAtZeroAreNotReported) {
  pdserve::v1::RequestTimeline p = FullTimeline();
  p.clear_modelled_prefill_us();
  p.clear_decode_verify_cpu_us();
  p.clear_decode_join_us();
  const ServerTimeline t = TimelineFromProto(p);
  EXPECT_TRUE(std::isnan(t.modelled_prefill_ms));
  EXPECT_TRUE(std::isnan(t.decode_verify_cpu_ms));
  EXPECT_TRUE(std::isnan(t.join_ms));
  EXPECT_TRUE(std::isnan(t.first_step_ms));
  EXPECT_DOUBLE_EQ(t.prefill_mock_cpu_ms, 2.5);
}

RequestRecord WithTimeline(const pdserve::v1::RequestTimeline& timeline, double ttft_ms) {
  RequestRecord r;
  r.success = true;
  r.input_len = 128;
  r.max_tokens = r.output_tokens = 2;
  r.ttft_s = ttft_ms / 1e3;
  r.e2el_s = r.ttft_s + 0.01;
  r.itl_s = {0.01};
  r.event_tokens = {1, 1};
  r.timeline = TimelineFromProto(timeline);
  return r;
}

TEST(TimelineTest, ControlPlaneIsTheGapsPlusTheClientLegs) {
  // Client TTFT 24 ms, server TTFT 22.5 ms: 1.5 ms between client and router.
  const RequestRecord r = WithTimeline(FullTimeline(), 24.0);
  EXPECT_NEAR(r.ControlPlaneMs(), 1.0 + 0.2 + 0.3 + 1.5, 1e-9);
  // 9 (modelled prefill) + 4 (transfer) + 3 (control plane) + 6.5 (modelled first step).
  EXPECT_NEAR(r.TtftModelMs(), 22.5, 1e-9);
}

TEST(TimelineTest, RunAggregatesCompareTtftWithTheModel) {
  pdserve::v1::RequestTimeline unreported = FullTimeline();
  unreported.clear_modelled_first_step_us();
  const std::vector<RequestRecord> rs = {WithTimeline(FullTimeline(), 24.0),
                                         WithTimeline(FullTimeline(), 27.0),
                                         WithTimeline(unreported, 90.0)};
  const BenchmarkMetrics m = ComputeMetrics(rs, 1.0, {50, 99}, {});
  ASSERT_TRUE(m.timeline.has_value());
  EXPECT_EQ(m.timeline->ttft_model_requests, 2);  // the third has no modelled first step
  EXPECT_NEAR(m.timeline->mean_ttft_model_ms, (22.5 + 25.5) / 2, 1e-9);
  EXPECT_NEAR(m.timeline->ttft_to_model_ratio, (24.0 + 27.0) / (22.5 + 25.5), 1e-9);
  EXPECT_NEAR(m.timeline->mean_prefill_mock_cpu_ms, 2.5, 1e-9);  // all three reported it
  EXPECT_NEAR(m.timeline->mean_modelled_first_step_ms, 6.5, 1e-9);

  BenchmarkResult result;
  result.options.percentiles = {50, 99};
  result.requests = rs;
  result.metrics = m;
  const nlohmann::ordered_json j = ResultToJson(result);
  // Per request 1.5 ms of gaps plus the client legs: 1.5, 4.5 and 67.5 ms.
  EXPECT_NEAR(j["mean_control_plane_ms"].get<double>(), (3.0 + 6.0 + 69.0) / 3, 1e-9);
  EXPECT_NEAR(j["ttft_to_model_ratio"].get<double>(), 51.0 / 48.0, 1e-9);
  EXPECT_TRUE(j["server_timelines"][2]["modelled_first_step_ms"].is_null());
  const std::string csv = FormatRequestsCsv(result);
  EXPECT_NE(csv.find(",9.0000,2.5000,6.5000,1.2000,1.0000,0.2000,0.3000,7.0000,3.0000,1.5000\n"),
            std::string::npos)
      << csv;
}

// The TTFT stages (common/ttft_stages.h) from the events the router adds to FullTimeline.
pdserve::v1::RequestTimeline StagedTimeline(int64_t relay_us) {
  pdserve::v1::RequestTimeline t = FullTimeline();
  t.set_allocated_us(1'000'800);  // allocate 0.3 ms, then dispatch 0.2 ms
  t.set_first_token_relayed_us(1'022'500 + relay_us);
  return t;
}

TEST(TimelineTest, TtftStagesPartitionTheRoutersTtft) {
  const ServerTimeline t = TimelineFromProto(StagedTimeline(100));
  // queue, allocate, dispatch, prefill, kv_transfer (prefill end -> transfer end: the 0.2 ms
  // hand-off and the 4 ms transfer), decode_admit, first_step, relay.
  EXPECT_EQ(t.ttft_stage_ms, (std::vector<double>{0.5, 0.3, 0.2, 10.0, 4.2, 0.3, 7.0, 0.1}));
  EXPECT_DOUBLE_EQ(t.relayed_ttft_ms, 22.6);
  // Without the relay time (an older router) there is no split.
  EXPECT_TRUE(TimelineFromProto(FullTimeline()).ttft_stage_ms.empty());
}

TEST(TimelineTest, StageMeansAndTheRestAddUpToTheMeanTtft) {
  // Client TTFT 24 and 30 ms against router TTFT 22.6 and 23.0 ms; a third request whose
  // timeline does not split is left out of the stages (and of their TTFT).
  const std::vector<RequestRecord> rs = {WithTimeline(StagedTimeline(100), 24.0),
                                         WithTimeline(StagedTimeline(500), 30.0),
                                         WithTimeline(FullTimeline(), 90.0)};
  BenchmarkResult result;
  result.options.percentiles = {50};
  result.requests = rs;
  result.metrics = ComputeMetrics(rs, 1.0, {50}, {});
  const TimelineMetrics& m = *result.metrics.timeline;
  EXPECT_EQ(m.ttft_stage_requests, 2);
  ASSERT_EQ(m.mean_ttft_stage_ms.size(), 8u);
  EXPECT_NEAR(m.mean_ttft_stage_ms[7], 0.3, 1e-9);  // relay: (0.1 + 0.5) / 2
  EXPECT_NEAR(m.mean_ttft_stage_other_ms, (1.4 + 7.0) / 2, 1e-9);
  const nlohmann::ordered_json j = ResultToJson(result);
  double stacked = j["mean_ttft_stage_other_ms"].get<double>();
  for (const char* stage : {"queue", "allocate", "dispatch", "prefill", "kv_transfer",
                            "decode_admit", "first_step", "relay"}) {
    stacked += j[std::string("mean_ttft_stage_") + stage + "_ms"].get<double>();
  }
  EXPECT_NEAR(stacked, (24.0 + 30.0) / 2, 1e-9);
  EXPECT_NEAR(j["mean_ttft_stage_prefill_ms"].get<double>(), 10.0, 1e-9);
  EXPECT_EQ(j["ttft_stage_requests"], 2);
  // The old fields keep their definitions: kv_transfer is transfer start -> end there.
  EXPECT_NEAR(j["mean_kv_transfer_ms"].get<double>(), 4.0, 1e-9);
  EXPECT_NEAR(j["server_timelines"][1]["ttft_stages_ms"]["relay"].get<double>(), 0.5, 1e-9);
  EXPECT_TRUE(j["server_timelines"][2]["ttft_stages_ms"].is_null());
}

TEST(TimelineTest, NoModelWithoutTimelines) {
  RequestRecord r;
  r.success = true;
  r.ttft_s = 0.01;
  EXPECT_TRUE(std::isnan(r.ControlPlaneMs()));
  EXPECT_TRUE(std::isnan(r.TtftModelMs()));
}

}  // namespace
}  // namespace pdserve::loadgen
