// Zero-copy local end to end (`pdserve prefill --zero-copy`): the prefill kernels write the
// decode workers' reserved blocks in place, the KV transfer is one notification, and the tokens
// are the model's (so those of the copying P/D and of colocated) with every block free after.
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

TEST(ZeroCopyRefusedE2eTest, ATransportThatCannotMapThePeerIsRefusedAtStartUp) {
  cluster::ClusterOptions o = Options("ucx", 1, 1);
  o.prefill_args = {"--zero-copy"};
  o.ready_timeout = absl::Seconds(20);
  absl::StatusOr<std::unique_ptr<cluster::Cluster>> c = cluster::Cluster::Start(o);
  EXPECT_FALSE(c.ok());
}

}  // namespace
}  // namespace pdserve::e2e
