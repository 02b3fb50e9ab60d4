// Zero-copy local end to end (`pdserve prefill --zero-copy`): the prefill kernels write the
// decode workers' reserved blocks in place, the KV transfer is one notification, and the tokens
// are the model's (so those of the copying P/D and of colocated) with every block free after.
#include <csignal>
#include <functional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/kv_layout.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

cluster::ClusterOptions ZeroCopy(const std::string& layout) {
  cluster::ClusterOptions o = Options("local");
  o.layout = layout;
  o.prefill_args = {"--zero-copy"};
  // The prefill pools are never written: the smallest that registers.
  o.prefill_blocks = 8;
  return o;
}

std::vector<Outcome> RunConcurrently(Client& client, int n, int (*prompt_len)(int),
                                     int (*max_tokens)(int)) {
  std::vector<Outcome> out(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      out[i] = client.Generate("z" + std::to_string(i), prompt_len(i), max_tokens(i), 300 + i);
    });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

class ZeroCopyE2eTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ZeroCopyE2eTest, ConcurrentRequestsEqualTheModelWithNoByteCopied) {
  auto cluster = Start(ZeroCopy(GetParam()));
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  const ModelConfig model = *PresetConfig("tiny");
  // Prompts far longer than the prefill pools' 8 blocks: only the decode pools hold them.
  auto prompt_len = [](int i) { return 1 + 41 * i % 400; };
  auto max_tokens = [](int i) { return 1 + 11 * i % 50; };
  std::vector<Outcome> out = RunConcurrently(client, 20, prompt_len, max_tokens);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(out[i].status.ok()) << "z" << i << ": " << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, Expected(prompt_len(i), max_tokens(i), 300 + i)) << "z" << i;
    const v1::RequestTimeline& t = out[i].timeline;
    EXPECT_NE(t.prefill_worker(), t.decode_worker()) << "z" << i;
    EXPECT_EQ(t.transfer_backend(), "local") << "z" << i;
    // Nothing copied: no operation, and the bytes are those written in place.
    EXPECT_EQ(t.transfer_ops(), 0u) << "z" << i;
    EXPECT_EQ(t.kv_bytes(), static_cast<uint64_t>(model.BlocksForTokens(prompt_len(i))) *
                                KvGeometry(model, 1, *ParseKvLayout(GetParam())).block_bytes())
        << "z" << i;
  }
  ExpectAllBlocksFree(client);
}

TEST_P(ZeroCopyE2eTest, RooflineWithClaimedChecksumsGivesTheModelsTokens) {
  cluster::ClusterOptions o = ZeroCopy(GetParam());
  o.compute = "roofline";
  o.prefill_args.insert(o.prefill_args.end(), {"--claim-checksum-mib", "0.0001"});
  auto cluster = Start(o);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  const ModelConfig model = *PresetConfig("tiny");
  for (int prompt_len : {1, 17, 129, 300}) {
    Outcome out = client.Generate("zr-" + std::to_string(prompt_len), prompt_len, 20, 8);
    ASSERT_TRUE(out.status.ok()) << prompt_len << ": " << out.status.error_message();
    EXPECT_EQ(out.tokens, Expected(prompt_len, 20, 8, model)) << prompt_len;
    EXPECT_EQ(out.timeline.transfer_ops(), 0u) << prompt_len;
  }
  ExpectAllBlocksFree(client);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ZeroCopyE2eTest,
                         ::testing::Values("layer-major", "block-major"),
                         [](const auto& info) {
                           return info.param == "layer-major" ? std::string("LayerMajor")
                                                              : std::string("BlockMajor");
                         });

// A peer dies while a zero-copy prefill has written (part of) the decode worker's reserved
// blocks and not announced them: the requests end with a clear error, nothing hangs, the
// reservations are freed (poisoned: a later request reading them would get wrong tokens), and
// the cluster serves the next request right.
class ZeroCopyFaultE2eTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ZeroCopyFaultE2eTest, APeerKilledMidWriteFailsItsRequestsAndFreesTheirBlocks) {
  const std::string victim = GetParam();
  cluster::ClusterOptions o = ZeroCopy("layer-major");
  o.num_prefill = victim == "prefill-0" ? 2 : 1;
  o.num_decode = victim == "decode-0" ? 2 : 1;
  // Batches hold their items for 1.5 s after the kernels wrote: the kill lands mid-item.
  o.prefill_args.insert(o.prefill_args.end(), {"--min-batch-us", "1500000"});
  o.router_args = {"--max-batch-size", "2"};
  auto cluster = Start(o);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  std::vector<Outcome> out(4);
  struct Joined {  // joined on every path, a failed ASSERT included
    std::vector<std::thread> threads;
    ~Joined() {
      for (std::thread& t : threads) t.join();
    }
  };
  {
    Joined load;
    for (int i = 0; i < 4; ++i) {
      load.threads.emplace_back(
          [&, i] { out[i] = client.Generate("f" + std::to_string(i), 60, 8, 50 + i); });
    }
    // The victim holds requests (a prefill batch held 1.5 s after its writes, or reservations
    // being written), then dies.
    const bool holding = WaitFor(
        [&] {
          // Every request is in its prefill batch (held 1.5 s after its writes), with its
          // reservation on a decode worker: both victims then hold some of them.
          absl::StatusOr<v1::ClusterStatus> s = client.Status();
          return s.ok() && s->prefilling_requests() >= 4;
        },
        absl::Seconds(60));
    EXPECT_TRUE(holding);
    EXPECT_TRUE(cluster->Kill(victim, SIGKILL).ok());
  }
  int failed = 0;
  for (int i = 0; i < 4; ++i) {
    if (out[i].status.ok()) {
      EXPECT_EQ(out[i].tokens, Expected(60, 8, 50 + i)) << "f" << i;
      EXPECT_NE(out[i].timeline.prefill_worker(), victim);
      EXPECT_NE(out[i].timeline.decode_worker(), victim);
    } else {
      failed++;
      EXPECT_EQ(out[i].status.error_code(), grpc::StatusCode::UNAVAILABLE)
          << "f" << i << ": " << out[i].status.error_message();
    }
  }
  EXPECT_GT(failed, 0);
  // Once the router dropped the dead worker, the next request is served right, and the
  // survivors' pools have every block free and none reserved.
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<v1::ClusterStatus> s = client.Status();
        if (!s.ok()) return false;
        for (const v1::WorkerStatus& w : s->workers()) {
          if (w.worker_id() == victim) return false;
        }
        return true;
      },
      absl::Seconds(30)));
  Outcome after = client.Generate("after", 60, 5, 7);
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.tokens, Expected(60, 5, 7));
  ExpectAllBlocksFree(client);
}

// (A decode-worker victim is left out: which requests it holds at the kill depends on
// placement, so "some request failed" could not be made certain in time.)
INSTANTIATE_TEST_SUITE_P(Victims, ZeroCopyFaultE2eTest, ::testing::Values("prefill-0"),
                         [](const auto& info) {
                           return info.param == "prefill-0" ? std::string("Prefill")
                                                            : std::string("Decode");
                         });

TEST(ZeroCopyRefusedE2eTest, ATransportThatCannotMapThePeerIsRefusedAtStartUp) {
  cluster::ClusterOptions o = Options("ucx", 1, 1);
  o.prefill_args = {"--zero-copy"};
  o.ready_timeout = absl::Seconds(20);
  absl::StatusOr<std::unique_ptr<cluster::Cluster>> c = cluster::Cluster::Start(o);
  EXPECT_FALSE(c.ok());
}

}  // namespace
}  // namespace pdserve::e2e
