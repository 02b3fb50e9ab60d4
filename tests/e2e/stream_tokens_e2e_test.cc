// Streamed KV gives the tokens of whole-prompt transfer (issue 15): prefill --stream-chunk-tokens
// over every CPU backend (local, ucx) and both layouts, with roofline compute (chunks leave as
// the modelled prefill passes them) and with the real kernels (chunks leave as their kernels
// end). Every request's tokens equal the model's, which whole-prompt transfer also gives
// (serving_e2e_test), its KV left in more than one batch, and every block is free afterwards.
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/kv_layout.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

// (transfer, layout, compute)
using Case = std::tuple<std::string, std::string, std::string>;

class StreamTokensE2eTest : public ::testing::TestWithParam<Case> {};

TEST_P(StreamTokensE2eTest, StreamedChunksGiveTheModelsTokens) {
  const auto& [transfer, layout, compute] = GetParam();
  cluster::ClusterOptions o = Options(transfer, 1, 1);
  o.layout = layout;
  o.compute = compute;
  o.prefill_args = {"--stream-chunk-tokens", "32"};  // 2 blocks of 16 tokens per chunk
  auto cluster = Start(o);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  const ModelConfig model = *PresetConfig("tiny");
  auto prompt_len = [](int i) { return 20 + 53 * i % 250; };
  std::vector<Outcome> out(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      out[i] = client.Generate("s" + std::to_string(i), prompt_len(i), 12, 40 + i);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(out[i].status.ok()) << "s" << i << ": " << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, Expected(prompt_len(i), 12, 40 + i, model)) << "s" << i;
    // One batch per started chunk of 32 tokens.
    EXPECT_EQ(out[i].timeline.transfer_batches(), static_cast<uint32_t>((prompt_len(i) + 31) / 32))
        << "s" << i;
    EXPECT_EQ(out[i].timeline.kv_bytes(),
              static_cast<uint64_t>(model.BlocksForTokens(prompt_len(i))) *
                  KvGeometry(model, 1, *ParseKvLayout(layout)).block_bytes())
        << "s" << i;
  }
  ExpectAllBlocksFree(client);
}

INSTANTIATE_TEST_SUITE_P(
    BackendsLayoutsCompute, StreamTokensE2eTest,
    ::testing::Combine(::testing::Values("local", "ucx"),
                       ::testing::Values("layer-major", "block-major"),
                       ::testing::Values("roofline", "real")),
    [](const auto& info) {
      std::string name = std::get<0>(info.param) + "_" + std::get<1>(info.param) + "_" +
                         std::get<2>(info.param);
      for (char& c : name) {
        if (c == '-') c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace pdserve::e2e
