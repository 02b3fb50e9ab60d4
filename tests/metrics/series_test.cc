// The router's and the workers' series as they are defined (router/router_metrics.h,
// service/worker_metrics.h), without processes: what one event moves, read back from the text.

#include <algorithm>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/exposition_parser.h"
#include "metrics/text_format.h"
#include "router/router_metrics.h"
#include "service/worker_metrics.h"

namespace pdserve::metrics_test {
namespace {

metrics::Exposition Read(const metrics::Registry& r) {
  absl::StatusOr<metrics::Exposition> e = metrics::ParseExposition(metrics::TextExposition(r));
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : metrics::Exposition{};
}

TEST(RouterMetricsTest, AFinishedRequestIsObservedWithVllmsDefinitions) {
  metrics::Registry r;
  std::unique_ptr<router::RouterMetrics> m = router::RouterMetrics::Create(r, "tiny").value();
  m->OnPromptDone(30);
  m->OnFirstToken(3.0);
  m->OnTokens(2);
  m->OnTokenGap(0.5);
  m->OnTokens(3);
  m->OnFinished({.arrival_us = 10'000'000,
                 .scheduled_us = 11'000'000,
                 .first_token_us = 13'000'000,
                 .last_token_us = 17'000'000,
                 .generated = 5,
                 .finish_reason = "length"});
  const metrics::Exposition e = Read(r);
  const metrics::LabelMap tiny = {{"model_name", "tiny"}};
  EXPECT_EQ(e.Value("vllm:prompt_tokens_total", tiny), 30);
  EXPECT_EQ(e.Value("vllm:generation_tokens_total", tiny), 5);
  EXPECT_EQ(e.Value("vllm:request_success_total",
                    {{"model_name", "tiny"}, {"finished_reason", "length"}}),
            1);
  const std::pair<const char*, double> sums[] = {
      {"vllm:time_to_first_token_seconds", 3.0},
      {"vllm:inter_token_latency_seconds", 0.5},
      {"vllm:e2e_request_latency_seconds", 7.0},            // last token - arrival
      {"vllm:request_queue_time_seconds", 1.0},             // scheduled - arrival
      {"vllm:request_prefill_time_seconds", 2.0},           // first token - scheduled
      {"vllm:request_decode_time_seconds", 4.0},            // last token - first token
      {"vllm:request_time_per_output_token_seconds", 1.0},  // decode / (5 - 1)
  };
  for (const auto& [name, sum] : sums) {
    EXPECT_EQ(e.Value(std::string(name) + "_count", tiny), 1) << name;
    EXPECT_DOUBLE_EQ(*e.Value(std::string(name) + "_sum", tiny), sum) << name;
  }
  // vLLM's buckets: TTFT's end at 2560 s; 3 s falls in le=5.
  EXPECT_EQ(
      e.Value("vllm:time_to_first_token_seconds_bucket", {{"model_name", "tiny"}, {"le", "2.5"}}),
      0);
  EXPECT_EQ(
      e.Value("vllm:time_to_first_token_seconds_bucket", {{"model_name", "tiny"}, {"le", "5"}}), 1);
  EXPECT_TRUE(
      e.Value("vllm:time_to_first_token_seconds_bucket", {{"model_name", "tiny"}, {"le", "2560"}})
          .has_value());
}

// pdserve:ttft_stage_seconds: a synthetic one-host timeline's stages land in the buckets of
// their own lengths, and their sums add up to the request's TTFT.
TEST(RouterMetricsTest, TtftStagesLandInTheirBucketsAndAddUpToTtft) {
  metrics::Registry r;
  std::unique_ptr<router::RouterMetrics> m = router::RouterMetrics::Create(r, "tiny").value();
  const TtftEvents t = {.arrival_us = 10'000'000,
                        .scheduled_us = 10'002'000,            // queue 2 ms
                        .allocated_us = 10'002'300,            // allocate 300 us
                        .prefill_start_us = 10'002'500,        // dispatch 200 us
                        .prefill_end_us = 10'042'500,          // prefill 40 ms
                        .transfer_end_us = 10'045'500,         // kv_transfer 3 ms
                        .decode_join_us = 10'045'570,          // decode_admit 70 us
                        .first_token_us = 10'052'570,          // first_step 7 ms
                        .first_token_relayed_us = 10'052'600};  // relay 30 us
  const double ttft_s = (t.first_token_relayed_us - t.arrival_us) * 1e-6;
  m->OnFirstToken(ttft_s);  // as the decode stream observes it, on the relay
  m->OnFinished({.arrival_us = t.arrival_us,
                 .scheduled_us = t.scheduled_us,
                 .first_token_us = t.first_token_relayed_us,
                 .last_token_us = t.first_token_relayed_us + 1000,
                 .generated = 2,
                 .finish_reason = "length",
                 .ttft_events = t});
  // A request whose timeline lacks the decode worker's events is not split.
  m->OnFinished({.arrival_us = 1, .scheduled_us = 2, .first_token_us = 3, .last_token_us = 4,
                 .generated = 1, .finish_reason = "length",
                 .ttft_events = {.arrival_us = 1, .scheduled_us = 2}});
  const metrics::Exposition e = Read(r);
  struct Expect {
    const char* stage;
    double seconds;
    double below, at;  // the largest bucket bound under the value, the smallest at or above it
  };
  const Expect stages[] = {
      {"queue", 0.002, 0.001, 0.0025},           {"allocate", 0.0003, 0.00025, 0.0005},
      {"dispatch", 0.0002, 0.0001, 0.00025},     {"prefill", 0.040, 0.025, 0.05},
      {"kv_transfer", 0.003, 0.0025, 0.005},     {"decode_admit", 0.00007, 0.00005, 0.0001},
      {"first_step", 0.007, 0.005, 0.01},        {"relay", 0.00003, 0, 0.00005},
  };
  double sum = 0;
  for (const Expect& s : stages) {
    const metrics::LabelMap labels = {{"model_name", "tiny"}, {"stage", s.stage}};
    auto bucket = [&](double le) {
      metrics::LabelMap with_le = labels;
      with_le["le"] = metrics::FormatValue(le);
      return e.Value("pdserve:ttft_stage_seconds_bucket", with_le);
    };
    EXPECT_EQ(e.Value("pdserve:ttft_stage_seconds_count", labels), 1) << s.stage;
    EXPECT_NEAR(*e.Value("pdserve:ttft_stage_seconds_sum", labels), s.seconds, 1e-12) << s.stage;
    if (s.below > 0) {
      EXPECT_EQ(bucket(s.below), 0) << s.stage;
    }
    EXPECT_EQ(bucket(s.at), 1) << s.stage;
    sum += *e.Value("pdserve:ttft_stage_seconds_sum", labels);
  }
  EXPECT_NEAR(sum, ttft_s, 1e-9);
  EXPECT_NEAR(sum, *e.Value("vllm:time_to_first_token_seconds_sum", {{"model_name", "tiny"}}),
              1e-9);
}

TEST(RouterMetricsTest, RejectionsAreCountedByReasonAndGaugesSet) {
  metrics::Registry r;
  std::unique_ptr<router::RouterMetrics> m = router::RouterMetrics::Create(r, "tiny").value();
  m->OnRejected(absl::StatusCode::kResourceExhausted);
  m->OnRejected(absl::StatusCode::kResourceExhausted);
  m->OnRejected(absl::StatusCode::kInvalidArgument);
  m->Set({.running = 3, .waiting = 2, .scheduler_queue = 1, .kv_usage = 0.25});
  const metrics::Exposition e = Read(r);
  EXPECT_EQ(e.Value("pdserve:requests_rejected_total", {{"reason", "queue_full"}}), 2);
  EXPECT_EQ(e.Value("pdserve:requests_rejected_total", {{"reason", "invalid_request"}}), 1);
  EXPECT_EQ(e.Value("vllm:num_requests_running", {{"model_name", "tiny"}}), 3);
  EXPECT_EQ(e.Value("vllm:num_requests_waiting", {{"model_name", "tiny"}}), 2);
  EXPECT_EQ(e.Value("pdserve:scheduler_queue_length"), 1);
  EXPECT_EQ(e.Value("vllm:kv_cache_usage_perc", {{"model_name", "tiny"}}), 0.25);
}

TEST(WorkerMetricsTest, PoolGaugesAndTransfersCarryTheWorker) {
  metrics::Registry r;
  std::unique_ptr<service::WorkerMetrics> m =
      service::WorkerMetrics::Create(
          r, {.worker_id = "decode-1", .role = "decode", .model_name = "tiny", .backend = "ucx"})
          .value();
  v1::WorkerCapacity c;
  c.set_total_blocks(200);
  c.set_free_blocks(150);
  c.set_running_requests(4);
  m->SetCapacity(c);
  m->OnTransfer("tcp/lo", 0.002, 4096);
  m->OnTransfer("tcp/lo", 0.004, 4096);
  const metrics::Exposition e = Read(r);
  const metrics::LabelMap worker = {{"worker", "decode-1"}, {"role", "decode"}};
  EXPECT_EQ(e.Value("pdserve:kv_pool_blocks_used", worker), 50);
  EXPECT_EQ(e.Value("pdserve:kv_pool_blocks_total", worker), 200);
  EXPECT_EQ(e.Value("pdserve:worker_running_requests", worker), 4);
  EXPECT_EQ(e.Value("vllm:kv_cache_usage_perc", {{"model_name", "tiny"}, {"worker", "decode-1"}}),
            0.25);
  const metrics::LabelMap lane = {
      {"worker", "decode-1"}, {"backend", "ucx"}, {"transport", "tcp/lo"}};
  EXPECT_EQ(e.Value("pdserve:kv_transfer_bytes_total", lane), 8192);
  EXPECT_EQ(e.Value("pdserve:kv_transfer_seconds_count", lane), 2);
}

TEST(WorkerMetricsTest, PrefillWorkersHaveNoVllmKvUsage) {
  metrics::Registry r;
  ASSERT_TRUE(
      service::WorkerMetrics::Create(
          r,
          {.worker_id = "prefill-0", .role = "prefill", .model_name = "tiny", .backend = "local"})
          .ok());
  const std::vector<std::string> names = r.Names();
  EXPECT_EQ(std::count(names.begin(), names.end(), "vllm:kv_cache_usage_perc"), 0);
}

TEST(WorkerMetricsTest, TransportLabelIsTheBackendsShortName) {
  EXPECT_EQ(service::TransportLabel("memcpy (inline up to 64 KiB, else x2 threads)"), "memcpy");
  EXPECT_EQ(service::TransportLabel("tcp/lo,posix/memory"), "tcp/lo,posix/memory");
  EXPECT_EQ(service::TransportLabel(""), "unknown");
  EXPECT_EQ(service::TransportLabel(std::string(300, 'x')).size(), 64u);
}

}  // namespace
}  // namespace pdserve::metrics_test
