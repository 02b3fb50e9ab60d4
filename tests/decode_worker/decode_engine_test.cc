#include "decode_worker/decode_engine.h"
#include "tests/decode_worker/drain_stream.h"

#include <memory>
#include <string>
#include <vector>

#include "common/synthetic_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvcache/cpu_attention.h"

namespace pdserve::decode {
namespace {

ModelConfig Tiny() { return *PresetConfig("tiny"); }

std::unique_ptr<KvCache> Pool(uint32_t blocks) {
  return *KvCache::CreateInHostMemory(Tiny(), blocks, KvLayout::kLayerMajor);
}

// What a prefill worker plus transfer would leave in the decode pool.
void WritePrompt(const KvCache& cache, const std::vector<BlockId>& blocks,
                 const std::vector<int32_t>& prompt) {
  ASSERT_TRUE(WriteKv(cache, blocks, prompt, 0).ok());
}

std::shared_ptr<DecodeStream> StartRequest(DecodeEngine& engine, const KvCache& cache,
                                           const std::string& id,
                                           const std::vector<int32_t>& prompt, int max_tokens,
                                           uint64_t seed) {
  absl::StatusOr<std::vector<BlockId>> blocks =
      engine.Allocate(id, static_cast<int>(prompt.size()), max_tokens);
  EXPECT_TRUE(blocks.ok()) << blocks.status();
  WritePrompt(cache, *blocks, prompt);
  absl::StatusOr<std::shared_ptr<DecodeStream>> stream =
      engine.Start(id, prompt, max_tokens, seed);
  EXPECT_TRUE(stream.ok()) << stream.status();
  return *stream;
}

TEST(DecodeEngineTest, GeneratesReferenceTokens) {
  auto cache = Pool(64);
  DecodeEngine engine(*cache, {});
  const std::vector<int32_t> prompt = model::SyntheticPrompt(7, 21, Tiny().vocab_size);
  auto stream = StartRequest(engine, *cache, "r1", prompt, 40, 7);
  auto [tokens, status] = Drain(*stream);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(tokens, model::ReferenceGenerate(prompt, 40, Tiny(), 7));
}

TEST(DecodeEngineTest, ConcurrentRequestsEachMatchReference) {
  auto cache = Pool(256);
  DecodeEngine engine(*cache, {});
  std::vector<std::shared_ptr<DecodeStream>> streams;
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 8; ++i) {
    const std::vector<int32_t> prompt = model::SyntheticPrompt(i, 5 + 9 * i, Tiny().vocab_size);
    const int max_tokens = 3 + 11 * i;
    streams.push_back(StartRequest(engine, *cache, "r" + std::to_string(i), prompt, max_tokens, i));
    expected.push_back(model::ReferenceGenerate(prompt, max_tokens, Tiny(), i));
  }
  for (int i = 0; i < 8; ++i) {
    auto [tokens, status] = Drain(*streams[i]);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(tokens, expected[i]) << "request " << i;
  }
}

TEST(DecodeEngineTest, ShortRequestJoiningLaterFinishesFirst) {
  auto cache = Pool(64);
  DecodeEngineOptions options;
  options.min_step = absl::Milliseconds(2);
  DecodeEngine engine(*cache, options);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 16, Tiny().vocab_size);
  auto long_stream = StartRequest(engine, *cache, "long", prompt, 300, 1);
  ASSERT_FALSE(long_stream->Next(absl::Seconds(30)).tokens.empty());  // long is running
  auto short_stream = StartRequest(engine, *cache, "short", prompt, 3, 2);
  auto [tokens, status] = Drain(*short_stream);
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(tokens, model::ReferenceGenerate(prompt, 3, Tiny(), 2));
  EXPECT_FALSE(long_stream->Next(absl::ZeroDuration()).finished);
}

TEST(DecodeEngineTest, AllocateTakesOnlyPromptBlocksButReservesOutput) {
  auto cache = Pool(10);
  DecodeEngine engine(*cache, {});
  ASSERT_TRUE(engine.Allocate("a", 20, 44).ok());  // 2 prompt blocks, 4 reserved
  DecodeCapacity c = engine.Capacity();
  EXPECT_EQ(c.free_blocks, 8u);
  EXPECT_EQ(c.reserved_blocks, 4u);
}

TEST(DecodeEngineTest, AllocateFailsWholeWhenReservationExceedsUnreservedBlocks) {
  auto cache = Pool(10);
  DecodeEngine engine(*cache, {});
  ASSERT_TRUE(engine.Allocate("a", 16, 80).ok());  // 6 reserved, 1 taken
  absl::StatusOr<std::vector<BlockId>> b = engine.Allocate("b", 16, 64);  // 5 > 4 unreserved
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(engine.Capacity().free_blocks, 9u);
}

TEST(DecodeEngineTest, OneAllocateReservesAtMostOneMaxLengthSequence) {
  // Issue 16: two Allocate calls with huge lengths took every block of a pool.
  auto cache = Pool(4 * static_cast<uint32_t>(Tiny().BlocksForTokens(Tiny().max_model_len)));
  DecodeEngine engine(*cache, {});
  absl::StatusOr<std::vector<BlockId>> hog = engine.Allocate("hog", 16, Tiny().max_model_len);
  EXPECT_EQ(hog.status().code(), absl::StatusCode::kInvalidArgument) << hog.status();
  EXPECT_EQ(engine.Capacity().reserved_blocks, 0u);
  EXPECT_TRUE(engine.Allocate("fits", 16, Tiny().max_model_len - 16).ok());
}

TEST(DecodeEngineTest, EveryBlockIsFreeAfterRequestsFinish) {
  auto cache = Pool(32);
  DecodeEngine engine(*cache, {});
  const std::vector<int32_t> prompt = model::SyntheticPrompt(3, 30, Tiny().vocab_size);
  auto a = StartRequest(engine, *cache, "a", prompt, 50, 1);
  auto b = StartRequest(engine, *cache, "b", prompt, 17, 2);
  Drain(*a);
  Drain(*b);
  EXPECT_TRUE(cache->allocator().CheckAllFree().ok());
  EXPECT_EQ(engine.Capacity().reserved_blocks, 0u);
}

TEST(DecodeEngineTest, ReleaseOfRunningRequestEndsItsStreamAndFreesBlocks) {
  auto cache = Pool(128);
  DecodeEngineOptions options;
  options.min_step = absl::Milliseconds(1);
  DecodeEngine engine(*cache, options);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(3, 30, Tiny().vocab_size);
  auto stream = StartRequest(engine, *cache, "a", prompt, 1000, 1);
  ASSERT_FALSE(stream->Next(absl::Seconds(30)).tokens.empty());
  ASSERT_TRUE(engine.Release("a", absl::CancelledError("client left")).ok());
  EXPECT_TRUE(cache->allocator().CheckAllFree().ok());
  auto [tokens, status] = Drain(*stream);
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
}

TEST(DecodeEngineTest, ReleaseOfAllocatedRequestWithFencedWriterFreesBlocks) {
  auto cache = Pool(16);
  DecodeEngine engine(*cache, {});
  ASSERT_TRUE(engine.Allocate("a", 40, 10).ok());
  ASSERT_TRUE(
      engine.Release("a", absl::AbortedError("router abort"), {.writer_fenced = true}).ok());
  EXPECT_TRUE(cache->allocator().CheckAllFree().ok());
  EXPECT_EQ(engine.Release("a", absl::AbortedError("again")).code(), absl::StatusCode::kNotFound);
}

TEST(DecodeEngineTest, StartWithoutAllocationIsFailedPrecondition) {
  auto cache = Pool(16);
  DecodeEngine engine(*cache, {});
  EXPECT_EQ(engine.Start("nope", {1, 2, 3}, 4, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Issue 16: the worker checks what the router checks; it does not trust its caller.
TEST(DecodeEngineTest, StartWithNegativeOrOutOfVocabularyTokenIsInvalidArgument) {
  auto cache = Pool(16);
  DecodeEngine engine(*cache, {});
  for (int32_t bad : {-5, Tiny().vocab_size}) {
    const std::string id = "bad" + std::to_string(bad);
    std::vector<int32_t> prompt = model::SyntheticPrompt(1, 20, Tiny().vocab_size);
    prompt[3] = bad;
    ASSERT_TRUE(engine.Allocate(id, 20, 4).ok());
    absl::StatusOr<std::shared_ptr<DecodeStream>> stream = engine.Start(id, prompt, 4, 0);
    EXPECT_EQ(stream.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(stream.status().message()),
                ::testing::HasSubstr("token " + std::to_string(bad) + " at position 3"));
    ASSERT_TRUE(engine.Release(id, stream.status(), {.writer_fenced = true}).ok());
  }
  EXPECT_TRUE(cache->allocator().CheckAllFree().ok());
}

TEST(DecodeEngineTest, ExpireAllocationsFreesRequestsNeverStarted) {
  auto cache = Pool(16);
  DecodeEngine engine(*cache, {});
  uint64_t epoch = 0;
  ASSERT_TRUE(engine.Allocate("stale", 40, 10, &epoch).ok());
  ASSERT_TRUE(engine.KvLanded("stale", epoch).ok());
  EXPECT_THAT(engine.ExpireAllocations(absl::ZeroDuration()), ::testing::ElementsAre("stale"));
  EXPECT_TRUE(cache->allocator().CheckAllFree().ok());
}

}  // namespace
}  // namespace pdserve::decode
