// Colocated workers end to end (`pdserve cluster --colocated N`): prefill and decode on one pool,
// no KV moved, the same tokens as the model (and so as P/D), every block free afterwards.
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

cluster::ClusterOptions Colocated(int n) {
  cluster::ClusterOptions o = Options("local");
  o.num_colocated = n;
  return o;
}

std::vector<Outcome> RunConcurrently(Client& client, int n, int (*prompt_len)(int),
                                     int (*max_tokens)(int)) {
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

TEST(ColocatedE2eTest, ConcurrentRequestsEqualTheModelAndMoveNoKv) {
  auto cluster = Start(Colocated(2));
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  auto prompt_len = [](int i) { return 1 + 37 * i % 300; };
  auto max_tokens = [](int i) { return 1 + 13 * i % 60; };
  std::vector<Outcome> out = RunConcurrently(client, 24, prompt_len, max_tokens);
  int on_each[2] = {0, 0};
  for (int i = 0; i < 24; ++i) {
    ASSERT_TRUE(out[i].status.ok()) << "c" << i << ": " << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, Expected(prompt_len(i), max_tokens(i), 100 + i)) << "c" << i;
    const v1::RequestTimeline& t = out[i].timeline;
    EXPECT_EQ(t.prefill_worker(), t.decode_worker()) << "c" << i;
    EXPECT_EQ(t.kv_bytes(), 0u) << "c" << i;
    EXPECT_EQ(t.transfer_backend(), "inproc") << "c" << i;
    on_each[t.decode_worker() == "colocated-1"]++;
  }
  EXPECT_GT(on_each[0], 0);
  EXPECT_GT(on_each[1], 0);
  ExpectAllBlocksFree(client);
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok());
  for (const v1::WorkerStatus& w : status->workers()) {
    EXPECT_EQ(w.role(), v1::WORKER_ROLE_COLOCATED) << w.worker_id();
    EXPECT_GT(w.prefill_engine().steps(), 0u) << w.worker_id();  // its prefill engine's batches
    EXPECT_GT(w.engine().steps(), 0u) << w.worker_id();          // its decode engine's steps
  }
}

TEST(ColocatedE2eTest, RequestsWaitForBlocksInASmallPool) {
  cluster::ClusterOptions o = Colocated(1);
  o.decode_blocks = 24;  // 3 requests of 7 blocks at a time: no prefill pool of its own
  auto cluster = Start(o);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  std::vector<Outcome> out =
      RunConcurrently(client, 12, [](int) { return 64; }, [](int) { return 40; });
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(out[i].status.ok()) << "c" << i << ": " << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, Expected(64, 40, 100 + i)) << "c" << i;
  }
  ExpectAllBlocksFree(client);
}

TEST(ColocatedE2eTest, RooflineWithClaimedChecksumsGivesTheModelsTokens) {
  cluster::ClusterOptions o = Colocated(1);
  o.compute = "roofline";
  o.prefill_args = {"--claim-checksum-mib", "0.0001"};  // every prompt claims its checksum
  auto cluster = Start(o);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  const ModelConfig model = *PresetConfig("tiny");
  int served = 0;
  for (int prompt_len : {1, 17, 40, 70, 129}) {
    Outcome out = client.Generate("claim-" + std::to_string(prompt_len), prompt_len, 24, 5);
    ASSERT_TRUE(out.status.ok()) << prompt_len << ": " << out.status.error_message();
    EXPECT_EQ(out.tokens, Expected(prompt_len, 24, 5, model)) << prompt_len;
    EXPECT_GT(out.timeline.modelled_prefill_us(), 0) << prompt_len;
    served++;
  }
  uint64_t checked = 0, refuted = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    absl::StatusOr<v1::ClusterStatus> status = client.Status();
    ASSERT_TRUE(status.ok());
    checked = status->workers(0).engine().claimed_checks();
    refuted = status->workers(0).engine().claims_refuted();
    if (checked >= static_cast<uint64_t>(served)) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(checked, static_cast<uint64_t>(served));
  EXPECT_EQ(refuted, 0u);
  ExpectAllBlocksFree(client);
}

}  // namespace
}  // namespace pdserve::e2e
