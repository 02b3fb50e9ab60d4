// End to end with real processes: outputs equal reference_generate for both transfer backends,
// under concurrency and with pools small enough that requests wait; blocks are all free after.
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

class ServingTest : public ::testing::TestWithParam<std::string> {};

// Runs `n` requests at once; request i has prompt prompt_len(i) and max_tokens max_tokens(i).
std::vector<Outcome> RunConcurrently(Client& client, int n, const std::function<int(int)>& prompt_len,
                                     const std::function<int(int)>& max_tokens) {
  std::vector<Outcome> out(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      out[i] = client.Generate("c" + std::to_string(i), prompt_len(i), max_tokens(i), 100 + i);
    });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

TEST_P(ServingTest, ConcurrentRequestsEqualReferenceGenerate) {
  auto cluster = Start(Options(GetParam()));
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  auto prompt_len = [](int i) { return 1 + 37 * i % 300; };
  auto max_tokens = [](int i) { return 1 + 13 * i % 60; };
  std::vector<Outcome> out = RunConcurrently(client, 24, prompt_len, max_tokens);
  for (int i = 0; i < 24; ++i) {
    ASSERT_TRUE(out[i].status.ok()) << "c" << i << ": " << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, Expected(prompt_len(i), max_tokens(i), 100 + i)) << "c" << i;
  }
}

TEST_P(ServingTest, EveryKvBlockIsFreeAfterARun) {
  auto cluster = Start(Options(GetParam()));
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  std::vector<Outcome> out =
      RunConcurrently(client, 8, [](int i) { return 20 + 30 * i; }, [](int i) { return 5 + i; });
  for (const Outcome& o : out) ASSERT_TRUE(o.status.ok()) << o.status.error_message();
  ExpectAllBlocksFree(client);
}

TEST_P(ServingTest, RequestsWaitForBlocksInSmallPoolsAndAllEqualReference) {
  cluster::ClusterOptions options = Options(GetParam(), 1, 1);
  options.decode_blocks = 24;  // 3 requests of 7 blocks at a time
  options.prefill_blocks = 16;
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  std::vector<Outcome> out =
      RunConcurrently(client, 16, [](int) { return 64; }, [](int) { return 40; });
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(out[i].status.ok()) << "c" << i << ": " << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, Expected(64, 40, 100 + i)) << "c" << i;
  }
  ExpectAllBlocksFree(client);
}

INSTANTIATE_TEST_SUITE_P(Backends, ServingTest, ::testing::Values("local", "ucx"),
                         [](const auto& info) { return info.param; });

// Same-host workers are reached by their fast lane (service/fast_lane.h) unless the router is
// told not to; the tokens are the model's either way.
TEST(FastLaneE2eTest, SameHostWorkersAreReachedByTheFastLaneUnlessTurnedOff) {
  for (bool off : {false, true}) {
    SCOPED_TRACE(off ? "--no-fast-lane" : "fast lane");
    cluster::ClusterOptions options = Options("local", 1, 1);
    if (off) options.router_args.push_back("--no-fast-lane");
    auto cluster = Start(options);
    ASSERT_NE(cluster, nullptr);
    Client client(cluster->endpoint());
    absl::StatusOr<v1::ClusterStatus> status = client.Status();
    ASSERT_TRUE(status.ok()) << status.status();
    ASSERT_EQ(status->workers_size(), 2);
    for (const v1::WorkerStatus& w : status->workers()) {
      EXPECT_EQ(w.fast_lane(), !off) << w.worker_id();
    }
    auto prompt_len = [](int i) { return 1 + 53 * i % 200; };
    auto max_tokens = [](int i) { return 1 + 7 * i % 20; };
    std::vector<Outcome> out = RunConcurrently(client, 8, prompt_len, max_tokens);
    for (int i = 0; i < 8; ++i) {
      ASSERT_TRUE(out[i].status.ok()) << "c" << i << ": " << out[i].status.error_message();
      EXPECT_EQ(out[i].tokens, Expected(prompt_len(i), max_tokens(i), 100 + i)) << "c" << i;
    }
    ExpectAllBlocksFree(client);
  }
}

TEST(ContinuousBatchingTest, ShortRequestSubmittedAfterLongOneFinishesFirst) {
  cluster::ClusterOptions options = Options("local", 1, 1);
  options.decode_args.insert(options.decode_args.end(), {"--min-step-us", "2000"});  // a long request decodes for seconds
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  absl::Notification long_running;
  Outcome long_out, short_out;
  std::thread long_thread([&] {
    long_out = client.Generate(Client::Request("long", 32, 1500, 1),
                               [&] { long_running.Notify(); });
  });
  ASSERT_TRUE(long_running.WaitForNotificationWithTimeout(absl::Seconds(60)));
  short_out = client.Generate("short", 32, 4, 2);
  long_thread.join();
  ASSERT_TRUE(short_out.status.ok()) << short_out.status.error_message();
  ASSERT_TRUE(long_out.status.ok()) << long_out.status.error_message();
  EXPECT_LT(short_out.finished_at_ns, long_out.finished_at_ns);
  EXPECT_EQ(short_out.tokens, Expected(32, 4, 2));
  EXPECT_EQ(long_out.tokens, Expected(32, 1500, 1));
  // Both ran on the one decode worker: the short one joined the long one's running batch.
  EXPECT_EQ(short_out.timeline.decode_worker(), long_out.timeline.decode_worker());
}

TEST(TimelineTest, FinalChunkCarriesOrderedTimelineAndWorkers) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  Outcome out = client.Generate("t1", 100, 8, 5);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  const v1::RequestTimeline& t = out.timeline;
  EXPECT_LE(t.arrival_us(), t.scheduled_us());
  EXPECT_LE(t.scheduled_us(), t.prefill_start_us());
  EXPECT_LE(t.prefill_start_us(), t.prefill_end_us());
  EXPECT_LE(t.prefill_end_us(), t.transfer_start_us());
  EXPECT_LE(t.transfer_start_us(), t.transfer_end_us());
  EXPECT_LE(t.transfer_end_us(), t.first_token_us());
  EXPECT_LE(t.first_token_us(), t.finish_us());
  EXPECT_EQ(t.prefill_worker(), "prefill-0");
  EXPECT_EQ(t.decode_worker(), "decode-0");
  EXPECT_EQ(t.transfer_backend(), "local");
  const ModelConfig tiny = *PresetConfig("tiny");
  EXPECT_EQ(t.kv_bytes(), static_cast<uint64_t>(tiny.BlocksForTokens(100) * tiny.KvBytesPerBlock()));
  EXPECT_GT(t.transfer_ops(), 0u);
}

}  // namespace
}  // namespace pdserve::e2e
