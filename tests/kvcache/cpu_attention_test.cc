#include "kvcache/cpu_attention.h"

#include <algorithm>
#include <random>

#include "common/synthetic_model.h"
#include "gtest/gtest.h"
#include "kvcache/reference_attention.h"

namespace pdserve {
namespace {

struct Generation {
  std::vector<int32_t> tokens;
  std::vector<BlockId> table;
};

// Prefill `prompt` into `cache` through `table`, then decode `n` tokens one step at a time,
// appending each new token's KV: the paged path end to end inside one pool.
Generation GenerateWithCache(KvCache& cache, std::span<const int32_t> prompt, int n,
                             uint64_t seed, std::vector<BlockId> table,
                             const std::function<void()>& before_decode = nullptr) {
  std::vector<int32_t> seq(prompt.begin(), prompt.end());
  EXPECT_TRUE(PrefillAttention(cache, table, prompt, 0, {}).ok());
  if (before_decode) before_decode();
  Generation g;
  for (int i = 0; i < n; ++i) {
    const int len = static_cast<int>(seq.size());
    if (i > 0) {
      EXPECT_TRUE(WriteKv(cache, table, std::span(&seq[len - 1], 1), len - 1).ok());
    }
    DecodeSequence s{.block_table = table, .last_token = seq.back(), .seq_len = len, .seed = seed};
    auto r = DecodeAttention(cache, std::span(&s, 1));
    EXPECT_TRUE(r.ok()) << r.status();
    seq.push_back((*r)[0].token);
    g.tokens.push_back((*r)[0].token);
  }
  g.table = std::move(table);
  return g;
}

std::vector<BlockId> ShuffledBlocks(KvCache& cache, int tokens, uint32_t seed) {
  std::vector<BlockId> all = *cache.allocator().Allocate(cache.geometry().num_blocks());
  std::shuffle(all.begin(), all.end(), std::mt19937(seed));
  const size_t need = cache.config().BlocksForTokens(tokens);
  std::vector<BlockId> spare(all.begin() + need, all.end());
  EXPECT_TRUE(cache.allocator().Free(spare).ok());
  all.resize(need);
  return all;
}

class PagedGenerationTest : public testing::TestWithParam<KvLayout> {
 protected:
  ModelConfig config_ = *PresetConfig("tiny");
};

TEST_P(PagedGenerationTest, TokensEqualReferenceGenerate) {
  auto cache = *KvCache::CreateInHostMemory(config_, 16, GetParam());
  const std::vector<int32_t> prompt = model::SyntheticPrompt(5, 37, config_.vocab_size);
  Generation g = GenerateWithCache(*cache, prompt, 12, 99, *cache->allocator().Allocate(4));
  EXPECT_EQ(g.tokens, model::ReferenceGenerate(prompt, 12, config_, 99));
}

TEST_P(PagedGenerationTest, ShuffledPhysicalBlocksGiveTheSameTokens) {
  auto cache = *KvCache::CreateInHostMemory(config_, 32, GetParam());
  const std::vector<int32_t> prompt = model::SyntheticPrompt(6, 50, config_.vocab_size);
  Generation g = GenerateWithCache(*cache, prompt, 10, 5, ShuffledBlocks(*cache, 60, 1234));
  EXPECT_EQ(g.tokens, model::ReferenceGenerate(prompt, 10, config_, 5));
}

TEST_P(PagedGenerationTest, FlippingOneCachedByteChangesTheTokens) {
  auto cache = *KvCache::CreateInHostMemory(config_, 16, GetParam());
  const std::vector<int32_t> prompt = model::SyntheticPrompt(7, 30, config_.vocab_size);
  std::vector<BlockId> table = *cache->allocator().Allocate(4);
  // One byte of the V row of position 17, layer 1, head 1.
  std::byte* target = cache->RowPtr(table[17 / config_.block_size], 17 % config_.block_size, 1, 1,
                                    model::kValue) + 5;
  Generation g = GenerateWithCache(*cache, prompt, 6, 3, table,
                                   [&] { *target ^= std::byte{0x10}; });
  const std::vector<int32_t> expected = model::ReferenceGenerate(prompt, 6, config_, 3);
  EXPECT_NE(g.tokens, expected);
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NE(g.tokens[i], expected[i]) << i;
}

TEST_P(PagedGenerationTest, ChunkedPrefillWritesTheSameKvAsWholePrefill) {
  auto whole = *KvCache::CreateInHostMemory(config_, 4, GetParam());
  auto chunked = *KvCache::CreateInHostMemory(config_, 4, GetParam());
  const std::vector<int32_t> prompt = model::SyntheticPrompt(8, 45, config_.vocab_size);
  std::vector<BlockId> table = {0, 1, 2};
  ASSERT_TRUE(PrefillAttention(*whole, table, prompt, 0, {}).ok());
  std::span<const int32_t> p(prompt);
  ASSERT_TRUE(PrefillAttention(*chunked, table, p.subspan(0, 20), 0, {}).ok());
  ASSERT_TRUE(PrefillAttention(*chunked, table, p.subspan(20), 20, {}).ok());
  EXPECT_EQ(std::memcmp(whole->base(), chunked->base(), whole->geometry().region_bytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(Layouts, PagedGenerationTest,
                         testing::Values(KvLayout::kLayerMajor, KvLayout::kBlockMajor),
                         [](const auto& info) {
                           return info.param == KvLayout::kLayerMajor ? "LayerMajor" : "BlockMajor";
                         });

TEST(CpuAttentionTest, BothLayoutsProduceTheSameTokens) {
  const ModelConfig c = *PresetConfig("small");
  const std::vector<int32_t> prompt = model::SyntheticPrompt(2, 40, c.vocab_size);
  auto a = *KvCache::CreateInHostMemory(c, 8, KvLayout::kLayerMajor);
  auto b = *KvCache::CreateInHostMemory(c, 8, KvLayout::kBlockMajor);
  EXPECT_EQ(GenerateWithCache(*a, prompt, 5, 1, {3, 1, 6, 0}).tokens,
            GenerateWithCache(*b, prompt, 5, 1, {5, 2, 7, 4}).tokens);
}

TEST(CpuAttentionTest, DecodeOutputMatchesNaiveReferenceWithinTolerance) {
  const ModelConfig c = *PresetConfig("small");
  const std::vector<int32_t> prompt = model::SyntheticPrompt(4, 33, c.vocab_size);
  auto cache = *KvCache::CreateInHostMemory(c, 4, KvLayout::kLayerMajor);
  std::vector<BlockId> table = {2, 0, 3};
  ASSERT_TRUE(WriteKv(*cache, table, prompt, 0).ok());
  std::vector<float> out(static_cast<size_t>(c.num_layers) * c.num_q_heads * c.head_dim);
  DecodeSequence s{.block_table = table, .last_token = prompt.back(), .seq_len = 33, .seed = 1,
                   .out = out};
  ASSERT_TRUE(DecodeAttention(*cache, std::span(&s, 1)).ok());
  const std::vector<float> ref = ReferenceAttention(c, prompt);
  ASSERT_EQ(ref.size(), out.size());
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-4) << i;
}

TEST(CpuAttentionTest, PrefillOutputMatchesNaiveReferenceAtEveryPosition) {
  const ModelConfig c = *PresetConfig("tiny");
  const std::vector<int32_t> prompt = model::SyntheticPrompt(9, 21, c.vocab_size);
  auto cache = *KvCache::CreateInHostMemory(c, 2, KvLayout::kBlockMajor);
  std::vector<BlockId> table = {1, 0};
  const size_t per_pos = static_cast<size_t>(c.num_layers) * c.num_q_heads * c.head_dim;
  std::vector<float> out(prompt.size() * per_pos);
  ASSERT_TRUE(PrefillAttention(*cache, table, prompt, 0, out).ok());
  for (size_t p = 0; p < prompt.size(); ++p) {
    const std::vector<float> ref = ReferenceAttention(c, std::span(prompt).subspan(0, p + 1));
    for (size_t i = 0; i < per_pos; ++i) ASSERT_NEAR(out[p * per_pos + i], ref[i], 1e-4);
  }
}

TEST(CpuAttentionTest, BatchedDecodeEqualsOneSequenceAtATime) {
  const ModelConfig c = *PresetConfig("tiny");
  auto cache = *KvCache::CreateInHostMemory(c, 16, KvLayout::kLayerMajor);
  std::vector<std::vector<BlockId>> tables;
  std::vector<DecodeSequence> batch;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(model::SyntheticPrompt(i, 10 + 9 * i, c.vocab_size));
    tables.push_back(*cache->allocator().Allocate(3));
    ASSERT_TRUE(WriteKv(*cache, tables.back(), prompts.back(), 0).ok());
  }
  for (int i = 0; i < 4; ++i) {
    batch.push_back({.block_table = tables[i], .last_token = prompts[i].back(),
                     .seq_len = static_cast<int>(prompts[i].size()), .seed = 11u + i});
  }
  auto together = DecodeAttention(*cache, batch);
  ASSERT_TRUE(together.ok());
  for (int i = 0; i < 4; ++i) {
    auto alone = DecodeAttention(*cache, std::span(&batch[i], 1));
    EXPECT_EQ((*together)[i].checksum, (*alone)[0].checksum);
    EXPECT_EQ((*together)[i].token, model::ReferenceGenerate(prompts[i], 1, c, 11u + i)[0]);
  }
}

TEST(CpuAttentionTest, RooflineModeReadsTheSameChecksumWithoutAttention) {
  const ModelConfig c = *PresetConfig("tiny");
  auto cache = *KvCache::CreateInHostMemory(c, 4, KvLayout::kLayerMajor);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 40, c.vocab_size);
  std::vector<BlockId> table = {0, 1, 2};
  ASSERT_TRUE(PrefillAttention(*cache, table, prompt, 0, {}, {.compute_attention = false}).ok());
  DecodeSequence s{.block_table = table, .last_token = prompt.back(), .seq_len = 40, .seed = 2};
  auto full = DecodeAttention(*cache, std::span(&s, 1));
  auto roof = DecodeAttention(*cache, std::span(&s, 1), {.compute_attention = false});
  EXPECT_EQ((*full)[0].token, (*roof)[0].token);
  EXPECT_EQ((*roof)[0].token, model::ReferenceGenerate(prompt, 1, c, 2)[0]);
}

TEST(CpuAttentionTest, TooShortBlockTableIsInvalidArgument) {
  const ModelConfig c = *PresetConfig("tiny");
  auto cache = *KvCache::CreateInHostMemory(c, 4, KvLayout::kLayerMajor);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 40, c.vocab_size);
  std::vector<BlockId> table = {0, 1};
  EXPECT_EQ(PrefillAttention(*cache, table, prompt, 0, {}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CpuAttentionTest, OutOfPoolBlockIsInvalidArgument) {
  const ModelConfig c = *PresetConfig("tiny");
  auto cache = *KvCache::CreateInHostMemory(c, 4, KvLayout::kLayerMajor);
  std::vector<BlockId> table = {0, 9};
  DecodeSequence s{.block_table = table, .last_token = 1, .seq_len = 20, .seed = 2};
  EXPECT_EQ(DecodeAttention(*cache, std::span(&s, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve
