#include "prefill_worker/prefill_engine.h"

#include "absl/strings/str_cat.h"
#include "common/synthetic_model.h"
#include "decode_worker/decode_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/prefill_worker/two_pools.h"

namespace pdserve::prefill {
namespace {

class PrefillEngineTest : public TwoPoolsTest {
 protected:
  std::unique_ptr<PrefillEngine> Engine(int chunk_tokens) {
    return MakeEngine({.chunk_tokens = chunk_tokens});
  }
};

TEST_F(PrefillEngineTest, ChunkedPrefillThenDecodeMatchesReference) {
  auto engine = Engine(/*chunk_tokens=*/16);
  decode::DecodeEngine decoder(*decode_cache_, {});
  const std::vector<int32_t> prompt = model::SyntheticPrompt(5, 100, Tiny().vocab_size);
  uint64_t epoch = 0;
  auto blocks = decoder.Allocate("r1", 100, 20, &epoch);
  ASSERT_TRUE(blocks.ok());
  std::vector<PrefillItemOutcome> out =
      engine->Run({{.request_id = "r1", .prompt = prompt, .decode_worker = "decode-0",
                    .decode_blocks = *blocks, .decode_epoch = epoch}});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].status.ok()) << out[0].status;
  EXPECT_EQ(out[0].kv_bytes, 7u * decode_cache_->geometry().block_bytes());
  auto stream = decoder.Start("r1", prompt, 20, 5);
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ(Drain(**stream), model::ReferenceGenerate(prompt, 20, Tiny(), 5));
}

TEST_F(PrefillEngineTest, NotifiesWithRequestIdAndEpochAndFreesOwnBlocks) {
  auto engine = Engine(512);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 40, Tiny().vocab_size);
  auto out = engine->Run({{.request_id = "a", .prompt = prompt, .decode_worker = "decode-0",
                           .decode_blocks = {0, 1, 2}, .decode_epoch = 1},
                          {.request_id = "b", .prompt = prompt, .decode_worker = "decode-0",
                           .decode_blocks = {3, 4, 5}, .decode_epoch = 1}});
  EXPECT_TRUE(out[0].status.ok());
  EXPECT_TRUE(out[1].status.ok());
  EXPECT_THAT(prefill_transport_.sent_notifications, ::testing::ElementsAre("a@1", "b@1"));
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
}

TEST_F(PrefillEngineTest, UnknownDecodePeerFailsOnlyThatItem) {
  auto engine = Engine(512);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 10, Tiny().vocab_size);
  auto out = engine->Run({{.request_id = "lost", .prompt = prompt, .decode_worker = "decode-9",
                           .decode_blocks = {0}, .decode_epoch = 1},
                          {.request_id = "fine", .prompt = prompt, .decode_worker = "decode-0",
                           .decode_blocks = {1}, .decode_epoch = 1}});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(out[1].status.ok());
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
}

TEST_F(PrefillEngineTest, WrongNumberOfDestinationBlocksIsInvalidArgument) {
  auto engine = Engine(512);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 40, Tiny().vocab_size);
  auto out = engine->Run({{.request_id = "a", .prompt = prompt, .decode_worker = "decode-0",
                           .decode_blocks = {0}, .decode_epoch = 1}});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kInvalidArgument);
}

// Issue 16: the worker checks what the router checks; it does not trust its caller.
TEST_F(PrefillEngineTest, NegativeOrOutOfVocabularyTokenIsInvalidArgumentAndNothingIsSent) {
  auto engine = Engine(512);
  for (int32_t bad : {-1, Tiny().vocab_size}) {
    std::vector<int32_t> prompt = model::SyntheticPrompt(1, 20, Tiny().vocab_size);
    prompt[7] = bad;
    auto out = engine->Run({{.request_id = absl::StrCat("bad", bad), .prompt = prompt,
                             .decode_worker = "decode-0",
                             .decode_blocks = {0, 1}, .decode_epoch = 1}});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(out[0].status.message()),
                ::testing::HasSubstr(absl::StrCat("token ", bad, " at position 7")));
  }
  EXPECT_THAT(prefill_transport_.sent_notifications, ::testing::IsEmpty());
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
}

TEST_F(PrefillEngineTest, DuplicateOrOutOfPoolDestinationBlockIsInvalidArgument) {
  auto engine = Engine(512);
  // As the router loads it: with the pool's size, which bounds the block ids.
  ASSERT_TRUE(engine->AddPeer("decode-0", *decode_transport_.ExportDescriptor(), 64).ok());
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 40, Tiny().vocab_size);
  auto out = engine->Run({{.request_id = "twice", .prompt = prompt, .decode_worker = "decode-0",
                           .decode_blocks = {0, 1, 1}, .decode_epoch = 1},
                          {.request_id = "outside", .prompt = prompt,
                           .decode_worker = "decode-0", .decode_blocks = {0, 1, 64},
                           .decode_epoch = 1}});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out[0].status.message()), ::testing::HasSubstr("block 1 is named twice"));
  EXPECT_EQ(out[1].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out[1].status.message()),
              ::testing::HasSubstr("block 64 is outside decode worker decode-0's pool of 64"));
  EXPECT_THAT(prefill_transport_.sent_notifications, ::testing::IsEmpty());
}

TEST_F(PrefillEngineTest, RemovedPeerIsNoLongerATarget) {
  auto engine = Engine(512);
  ASSERT_TRUE(engine->RemovePeer("decode-0").ok());
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 10, Tiny().vocab_size);
  auto out = engine->Run({{.request_id = "a", .prompt = prompt, .decode_worker = "decode-0",
                           .decode_blocks = {0}, .decode_epoch = 1}});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kUnavailable);
}

// The router removes a dropped decode instance after it dropped it; a restart under the same id
// may be loaded first. Removing with the old instance's descriptor keeps the new one's peer;
// removing with the new one's (or by id alone) drops it.
TEST_F(PrefillEngineTest, RemovingADroppedInstanceKeepsTheRestartedOnesPeer) {
  auto engine = Engine(512);  // decode-0: the old instance's pool
  const std::string old_pool = *decode_transport_.ExportDescriptor();
  auto restarted_cache = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
  FakeTransport restarted;
  ASSERT_TRUE(restarted.RegisterPool(*restarted_cache).ok());
  const std::string new_pool = *restarted.ExportDescriptor();
  ASSERT_NE(old_pool, new_pool);
  ASSERT_TRUE(engine->AddPeer("decode-0", new_pool, 64).ok());
  ASSERT_TRUE(engine->RemovePeer("decode-0", old_pool).ok());
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 10, Tiny().vocab_size);
  auto out = engine->Run({{.request_id = "kept", .prompt = prompt, .decode_worker = "decode-0",
                           .decode_blocks = {0}, .decode_epoch = 1}});
  EXPECT_TRUE(out[0].status.ok()) << out[0].status;
  ASSERT_TRUE(engine->RemovePeer("decode-0", new_pool).ok());
  out = engine->Run({{.request_id = "gone", .prompt = prompt, .decode_worker = "decode-0",
                      .decode_blocks = {1}, .decode_epoch = 1}});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pdserve::prefill
