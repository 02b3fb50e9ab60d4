// The decode engine's own checks of the KV it decodes from: carried checksums (roofline mode)
// give the reference tokens, a block overwritten while a request runs fails that request, and
// freed blocks can be poisoned so that a stale read cannot pass.

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/synthetic_model.h"
#include "decode_worker/decode_engine.h"
#include "tests/decode_worker/drain_stream.h"
#include "gtest/gtest.h"
#include "kvcache/cpu_attention.h"

namespace pdserve::decode {
namespace {

ModelConfig Tiny() { return *PresetConfig("tiny"); }

struct Started {
  std::vector<BlockId> blocks;
  std::shared_ptr<DecodeStream> stream;
};

Started Start(DecodeEngine& engine, const KvCache& cache, const std::string& id,
              const std::vector<int32_t>& prompt, int max_tokens, uint64_t seed) {
  Started s;
  s.blocks = *engine.Allocate(id, static_cast<int>(prompt.size()), max_tokens);
  EXPECT_TRUE(WriteKv(cache, s.blocks, prompt, 0).ok());
  s.stream = *engine.Start(id, prompt, max_tokens, seed);
  return s;
}

DecodeEngineOptions Carried() {
  DecodeEngineOptions o;
  o.attention.compute_attention = false;
  o.carry_checksum = true;
  return o;
}

TEST(DecodeVerifyTest, CarriedChecksumsGiveTheReferenceTokens) {
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
  DecodeEngine engine(*cache, Carried());
  std::vector<Started> started;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 3; ++i) {
    prompts.push_back(model::SyntheticPrompt(30 + i, 17 + 9 * i, Tiny().vocab_size));
    started.push_back(Start(engine, *cache, "r" + std::to_string(i), prompts.back(), 33, 4 + i));
  }
  for (int i = 0; i < 3; ++i) {
    auto [tokens, status] = Drain(*started[i].stream);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(tokens, model::ReferenceGenerate(prompts[i], 33, Tiny(), 4 + i));
  }
  const DecodeStepCounters counters = engine.StepCounters();
  EXPECT_GT(counters.steps, 0u);
  EXPECT_GT(counters.verify_us + counters.work_us, 0u);
}

// A late write from elsewhere lands in a prompt block while the request decodes: the carried
// sum no longer matches the bytes, and the request must not end OK.
TEST(DecodeVerifyTest, BlockOverwrittenWhileDecodingFailsTheRequestWithDataLoss) {
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
  DecodeEngineOptions options = Carried();
  options.min_step = absl::Milliseconds(5);  // time to corrupt between first and last token
  DecodeEngine engine(*cache, options);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(3, 40, Tiny().vocab_size);
  Started s = Start(engine, *cache, "victim", prompt, 40, 1);
  DecodeStream::Chunk first = s.stream->Next(absl::Seconds(30));
  ASSERT_FALSE(first.tokens.empty());
  ASSERT_FALSE(first.finished);
  // Overwrite a row of a layer/head the probe does not read (layer 0): only the checksum sees it.
  std::byte* row = cache->RowPtr(s.blocks[1], 3, 0, 0, model::kValue);
  std::memset(row, 0x5A, 16);
  auto [tokens, status] = Drain(*s.stream);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_NE(status.message().find("victim"), std::string::npos) << status;
}

TEST(DecodeVerifyTest, UntouchedRequestFinishesOkWithMinStep) {
  // The same run as above without the corruption ends OK (the test above fails for the write).
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
  DecodeEngineOptions options = Carried();
  options.min_step = absl::Milliseconds(5);
  DecodeEngine engine(*cache, options);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(3, 40, Tiny().vocab_size);
  Started s = Start(engine, *cache, "clean", prompt, 40, 1);
  auto [tokens, status] = Drain(*s.stream);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(tokens, model::ReferenceGenerate(prompt, 40, Tiny(), 1));
}

TEST(DecodeVerifyTest, PoisonedBlocksHoldThePatternOnceFreed) {
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 16, KvLayout::kBlockMajor);
  DecodeEngineOptions options = Carried();
  options.poison_freed_blocks = true;
  DecodeEngine engine(*cache, options);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(4, 30, Tiny().vocab_size);
  Started s = Start(engine, *cache, "p", prompt, 5, 2);
  auto [tokens, status] = Drain(*s.stream);
  ASSERT_TRUE(status.ok()) << status;
  const std::byte* block = cache->base() + cache->geometry().FragmentOffset(s.blocks[0], 0);
  for (int64_t i = 0; i < cache->geometry().block_bytes(); ++i) {
    ASSERT_EQ(static_cast<unsigned char>(block[i]), 0xA5) << "byte " << i;
  }
}

TEST(DecodeVerifyTest, WithoutPoisonFreedBlocksKeepTheirKv) {
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 16, KvLayout::kBlockMajor);
  DecodeEngine engine(*cache, Carried());
  const std::vector<int32_t> prompt = model::SyntheticPrompt(4, 30, Tiny().vocab_size);
  Started s = Start(engine, *cache, "p", prompt, 5, 2);
  ASSERT_TRUE(Drain(*s.stream).second.ok());
  // A stale reader would find the old prompt's KV: that is what poisoning prevents.
  EXPECT_EQ(*KvChecksum(*cache, s.blocks, 0, 30),
            [&] {
              uint64_t sum = 0;
              for (int p = 0; p < 30; ++p) sum += model::PositionChecksum(Tiny(), prompt[p], p);
              return sum;
            }());
}

}  // namespace
}  // namespace pdserve::decode
