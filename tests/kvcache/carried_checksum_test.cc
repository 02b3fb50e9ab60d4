// Roofline decode carries each request's checksum forward instead of re-reading its KV: the
// tokens must be those of a full read for every preset and dtype, and the attention probe must
// make the tokens depend on the query, not only on the KV bytes.

#include <string>
#include <tuple>
#include <vector>

#include "common/synthetic_model.h"
#include "gtest/gtest.h"
#include "kvcache/cpu_attention.h"

namespace pdserve {
namespace {

class CarriedChecksumTest : public testing::TestWithParam<std::tuple<std::string, DType>> {
 protected:
  ModelConfig Config() const {
    ModelConfig c = *PresetConfig(std::get<0>(GetParam()));
    c.dtype = std::get<1>(GetParam());
    return c;
  }
};

TEST_P(CarriedChecksumTest, CarriedAndFullChecksumsGiveTheReferenceTokens) {
  const ModelConfig c = Config();
  const int prompt_len = 37, steps = 6;
  auto cache = *KvCache::CreateInHostMemory(c, c.BlocksForTokens(prompt_len + steps) + 1,
                                            KvLayout::kLayerMajor);
  std::vector<BlockId> table = *cache->allocator().Allocate(c.BlocksForTokens(prompt_len + steps));
  std::vector<int32_t> seq = model::SyntheticPrompt(5, prompt_len, c.vocab_size);
  ASSERT_TRUE(WriteKv(*cache, table, seq, 0).ok());
  uint64_t carried = *KvChecksum(*cache, table, 0, prompt_len, 2);
  std::vector<int32_t> full_tokens, carried_tokens;
  for (int i = 0; i < steps; ++i) {
    const int len = static_cast<int>(seq.size());
    if (i > 0) {
      ASSERT_TRUE(WriteKv(*cache, table, std::span(&seq[len - 1], 1), len - 1).ok());
      carried += *KvChecksum(*cache, table, len - 1, len);
    }
    DecodeSequence s{.block_table = table, .last_token = seq.back(), .seq_len = len, .seed = 9};
    auto full = DecodeAttention(*cache, std::span(&s, 1), {.compute_attention = false});
    s.carried_checksum = carried;
    auto fast = DecodeAttention(*cache, std::span(&s, 1), {.compute_attention = false});
    ASSERT_TRUE(full.ok() && fast.ok());
    EXPECT_EQ((*full)[0].checksum, carried) << "step " << i;
    full_tokens.push_back((*full)[0].token);
    carried_tokens.push_back((*fast)[0].token);
    seq.push_back((*fast)[0].token);
  }
  EXPECT_EQ(carried_tokens, full_tokens);
  EXPECT_EQ(carried_tokens,
            model::ReferenceGenerate(std::span(seq.data(), prompt_len), steps, c, 9));
}

INSTANTIATE_TEST_SUITE_P(
    PresetsAndDtypes, CarriedChecksumTest,
    testing::Combine(testing::Values("tiny", "small", "llama3-8b"),
                     testing::Values(DType::kBF16, DType::kFP16, DType::kFP32)),
    [](const auto& info) {
      std::string name = std::get<0>(info.param) + "_" +
                         std::string(DTypeName(std::get<1>(info.param)));
      for (char& ch : name) ch = (ch == '-') ? '_' : ch;
      return name;
    });

// A decode worker told the wrong last prompt token reads the same KV bytes but asks another
// query: the probe moves, and so does the token.
TEST(AttentionProbeTest, AnotherQueryOverTheSameKvMovesTheProbe) {
  const ModelConfig c = *PresetConfig("small");
  auto cache = *KvCache::CreateInHostMemory(c, 16, KvLayout::kBlockMajor);
  std::vector<BlockId> table = *cache->allocator().Allocate(12);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(8, 180, c.vocab_size);
  ASSERT_TRUE(WriteKv(*cache, table, prompt, 0).ok());
  const int32_t right = *AttentionProbe(*cache, table, prompt.back(), 180);
  int moved = 0;
  for (int32_t other = 1; other <= 20; ++other) {
    moved += *AttentionProbe(*cache, table, (prompt.back() + other) % c.vocab_size, 180) != right;
  }
  EXPECT_GE(moved, 17);  // a random argmax over 180 positions rarely repeats
}

// The probe reads the probe layer's keys: corrupting one K row there changes it when that row
// held the best score.
TEST(AttentionProbeTest, ProbeReadsTheProbeHeadsKeysFromTheCache) {
  const ModelConfig c = *PresetConfig("tiny");
  auto cache = *KvCache::CreateInHostMemory(c, 8, KvLayout::kLayerMajor);
  std::vector<BlockId> table = *cache->allocator().Allocate(4);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(2, 60, c.vocab_size);
  ASSERT_TRUE(WriteKv(*cache, table, prompt, 0).ok());
  const int32_t best = *AttentionProbe(*cache, table, prompt.back(), 60);
  // Zero the winning key row: its score becomes 0, below the best of 60 random scores.
  std::byte* row = cache->RowPtr(table[best / c.block_size], best % c.block_size,
                                 model::ProbeLayer(c.num_layers),
                                 model::ProbeKvHead(c.num_kv_heads), model::kKey);
  std::memset(row, 0, c.RowBytes());
  EXPECT_NE(*AttentionProbe(*cache, table, prompt.back(), 60), best);
}

}  // namespace
}  // namespace pdserve
