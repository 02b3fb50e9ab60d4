// Claimed prompt checksums (decode_engine.h): a request starts from the prefill worker's
// checksum of the prompt KV, and the verifier thread checks it against the landed blocks in the
// background. A right claim gives the reference tokens; a claim the blocks do not match never
// ends OK; blocks being read by that check are freed only after it.

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

DecodeEngineOptions Carried(absl::Duration min_step = absl::ZeroDuration()) {
  DecodeEngineOptions o;
  o.attention.compute_attention = false;
  o.carry_checksum = true;
  o.min_step = min_step;
  return o;
}

struct Started {
  std::vector<BlockId> blocks;
  std::shared_ptr<DecodeStream> stream;
};

// Writes the prompt's KV, computes the claim from it, applies `corrupt` to the landed bytes,
// then starts the request with the claim (+ `claim_offset`).
Started StartClaimed(DecodeEngine& engine, KvCache& cache, const std::string& id,
                     const std::vector<int32_t>& prompt, int max_tokens, uint64_t seed,
                     uint64_t claim_offset = 0, bool corrupt = false) {
  Started s;
  s.blocks = *engine.Allocate(id, static_cast<int>(prompt.size()), max_tokens);
  EXPECT_TRUE(WriteKv(cache, s.blocks, prompt, 0).ok());
  const uint64_t claim =
      *KvChecksum(cache, s.blocks, 0, static_cast<int>(prompt.size())) + claim_offset;
  if (corrupt) {
    // A row of layer 0, which the probe does not read: only the checksum can see it.
    std::memset(cache.RowPtr(s.blocks[1], 2, 0, 1, model::kKey), 0x3C, 8);
  }
  s.stream = *engine.Start(id, prompt, max_tokens, seed, claim);
  return s;
}

bool AllBlocksFreeWithin(const DecodeEngine& engine, absl::Duration within) {
  const absl::Time deadline = absl::Now() + within;
  while (absl::Now() < deadline) {
    const DecodeCapacity c = engine.Capacity();
    if (c.free_blocks == c.total_blocks) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return false;
}

TEST(DecodeClaimTest, RightClaimsGiveTheReferenceTokens) {
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
  DecodeEngine engine(*cache, Carried());
  std::vector<std::vector<int32_t>> prompts;
  std::vector<Started> started;
  for (int i = 0; i < 3; ++i) {
    prompts.push_back(model::SyntheticPrompt(50 + i, 21 + 11 * i, Tiny().vocab_size));
    started.push_back(
        StartClaimed(engine, *cache, "c" + std::to_string(i), prompts.back(), 25, 9 + i));
  }
  for (int i = 0; i < 3; ++i) {
    auto [tokens, status] = Drain(*started[i].stream);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(tokens, model::ReferenceGenerate(prompts[i], 25, Tiny(), 9 + i));
  }
  EXPECT_TRUE(AllBlocksFreeWithin(engine, absl::Seconds(10)));
}

TEST(DecodeClaimTest, ClaimTheBlocksDoNotMatchEndsWithDataLoss) {
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
  DecodeEngine engine(*cache, Carried(absl::Milliseconds(2)));
  const std::vector<int32_t> prompt = model::SyntheticPrompt(7, 45, Tiny().vocab_size);
  Started s = StartClaimed(engine, *cache, "forged", prompt, 30, 3, /*claim_offset=*/1);
  auto [tokens, status] = Drain(*s.stream);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_NE(status.message().find("forged"), std::string::npos) << status;
  EXPECT_TRUE(AllBlocksFreeWithin(engine, absl::Seconds(10)));
}

TEST(DecodeClaimTest, KvThatLandedOtherThanSentEndsWithDataLoss) {
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
  DecodeEngine engine(*cache, Carried(absl::Milliseconds(2)));
  const std::vector<int32_t> prompt = model::SyntheticPrompt(8, 45, Tiny().vocab_size);
  Started s = StartClaimed(engine, *cache, "torn", prompt, 30, 3, 0, /*corrupt=*/true);
  auto [tokens, status] = Drain(*s.stream);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_NE(status.message().find("did not land as sent"), std::string::npos) << status;
}

TEST(DecodeClaimTest, OneTokenRequestsStillWaitForTheCheck) {
  // The request finishes before its join check can have run: the final check, queued behind
  // it, must report the mismatch.
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
  DecodeEngine engine(*cache, Carried());
  for (int i = 0; i < 5; ++i) {
    const std::vector<int32_t> prompt = model::SyntheticPrompt(20 + i, 60, Tiny().vocab_size);
    Started s = StartClaimed(engine, *cache, "one" + std::to_string(i), prompt, 1, 3, 5);
    auto [tokens, status] = Drain(*s.stream);
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  }
}

TEST(DecodeClaimTest, ReleasedDuringItsCheckFreesEveryBlockOnce) {
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
  DecodeEngine engine(*cache, Carried(absl::Milliseconds(1)));
  for (int i = 0; i < 10; ++i) {
    const std::vector<int32_t> prompt = model::SyntheticPrompt(40 + i, 70, Tiny().vocab_size);
    const std::string id = "gone" + std::to_string(i);
    Started s = StartClaimed(engine, *cache, id, prompt, 50, 3);
    ASSERT_TRUE(engine.Release(id, absl::CancelledError("client left"), {}).ok());
    auto [tokens, status] = Drain(*s.stream);
    EXPECT_FALSE(status.ok());
  }
  ASSERT_TRUE(AllBlocksFreeWithin(engine, absl::Seconds(10)));
  EXPECT_TRUE(cache->allocator().CheckAllFree().ok());
}

}  // namespace
}  // namespace pdserve::decode
