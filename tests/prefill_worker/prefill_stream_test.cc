// Streaming a prompt's KV in chunks during the modelled prefill (prefill_transfers.cc): every
// block arrives once and only the last batch notifies; it leaves on time even while earlier
// ones are in flight (the transport holds its notification until they landed).
#include <algorithm>

#include "common/roofline.h"
#include "common/synthetic_model.h"
#include "decode_worker/decode_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prefill_worker/prefill_engine.h"
#include "tests/prefill_worker/two_pools.h"

namespace pdserve::prefill {
namespace {

using ::testing::ElementsAre;

class PrefillStreamTest : public TwoPoolsTest {
 protected:
  void SetUp() override {
    TwoPoolsTest::SetUp();
    PrefillEngineOptions options;
    options.roofline.emplace(Tiny(), *GpuSpecByName("h100"));
    options.stream_chunk_tokens = 32;  // 2 blocks per chunk
    options.transfer_timeout = absl::Milliseconds(50);
    engine_ = MakeEngine(options);
  }

  std::unique_ptr<PrefillEngine> engine_;
};

TEST_F(PrefillStreamTest, ChunksDeliverEveryBlockOnceAndOnlyTheLastNotifies) {
  decode::DecodeEngine decoder(*decode_cache_, {});
  const std::vector<int32_t> prompt = model::SyntheticPrompt(5, 100, Tiny().vocab_size);
  uint64_t epoch = 0;
  auto blocks = decoder.Allocate("r1", 100, 20, &epoch);  // 7 prompt blocks
  ASSERT_TRUE(blocks.ok());
  std::vector<PrefillItemOutcome> out =
      engine_->Run({{.request_id = "r1", .prompt = prompt, .decode_worker = "decode-0",
                     .decode_blocks = *blocks, .decode_epoch = epoch}});
  ASSERT_TRUE(out[0].status.ok()) << out[0].status;
  const std::string note = "r1@" + std::to_string(epoch);
  EXPECT_THAT(prefill_transport_.sent_notifications, ElementsAre("", "", "", note));
  EXPECT_EQ(out[0].transfer_batches, 4u);
  EXPECT_EQ(out[0].transfer_ops, 7u);
  EXPECT_EQ(out[0].kv_bytes, 7u * decode_cache_->geometry().block_bytes());
  EXPECT_GT(out[0].modelled_us, 0);
  // (When the first chunk leaves against the modelled end is not asserted: tiny's modelled
  // prefill time hardly depends on the prompt's length, so every chunk is due at about the end,
  // and the two clock reads may come in either order.)
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
  auto stream = decoder.Start("r1", prompt, 20, 5);
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ(Drain(**stream), model::ReferenceGenerate(prompt, 20, Tiny(), 5));
}

TEST_F(PrefillStreamTest, ChunksStillInFlightLeaveTheItemStrandedUntilTheyEnd) {
  prefill_transport_.stall_transfers = true;  // no batch ever completes
  const std::vector<int32_t> prompt = model::SyntheticPrompt(5, 100, Tiny().vocab_size);
  std::vector<BlockId> blocks = {10, 11, 12, 13, 14, 15, 16};
  std::vector<PrefillItemOutcome> out =
      engine_->Run({{.request_id = "r1", .prompt = prompt, .decode_worker = "decode-0",
                     .decode_blocks = blocks, .decode_epoch = 3}});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kDeadlineExceeded) << out[0].status;
  EXPECT_TRUE(out[0].transfer_in_flight);
  // Every chunk went, the notifying one last, without waiting for the earlier ones.
  EXPECT_THAT(prefill_transport_.sent_notifications, ElementsAre("", "", "", "r1@3"));
  // Bytes may still land: the fence says so, and the own blocks stay taken.
  EXPECT_THAT(engine_->Cancel({{"r1", 3}}, absl::ZeroDuration()),
              ElementsAre(CancelOutcome::kInFlight));
  EXPECT_FALSE(prefill_cache_->allocator().CheckAllFree().ok());
  prefill_transport_.stall_transfers = false;  // they end: the next reap frees the blocks
  engine_->ReapEndedTransfers();
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
  // Every chunk, the notifying one included, completed: the KV landed whole.
  EXPECT_THAT(engine_->Cancel({{"r1", 3}}, absl::ZeroDuration()),
              ElementsAre(CancelOutcome::kCompleted));
}

// Real kernels (CPU here, the GPU's through compute_chunk alike): each chunk's blocks leave as
// soon as its kernels ended, while the next chunk computes; the tokens are the model's.
TEST_F(PrefillStreamTest, RealKernelsStreamEachChunkAsItsKernelsEnd) {
  PrefillEngineOptions options;
  options.stream_chunk_tokens = 40;  // rounded up to 3 blocks
  options.chunk_tokens = 512;        // streaming sets the kernels' chunk, not this
  engine_ = MakeEngine(options);
  decode::DecodeEngine decoder(*decode_cache_, {});
  const std::vector<int32_t> prompt = model::SyntheticPrompt(9, 100, Tiny().vocab_size);
  uint64_t epoch = 0;
  auto blocks = decoder.Allocate("r2", 100, 12, &epoch);  // 7 prompt blocks: 3 + 3 + 1
  ASSERT_TRUE(blocks.ok());
  std::vector<PrefillItemOutcome> out =
      engine_->Run({{.request_id = "r2", .prompt = prompt, .decode_worker = "decode-0",
                     .decode_blocks = *blocks, .decode_epoch = epoch}});
  ASSERT_TRUE(out[0].status.ok()) << out[0].status;
  EXPECT_THAT(prefill_transport_.sent_notifications,
              ElementsAre("", "", "r2@" + std::to_string(epoch)));
  EXPECT_EQ(out[0].transfer_batches, 3u);
  EXPECT_EQ(out[0].kv_bytes, 7u * decode_cache_->geometry().block_bytes());
  // The first chunk left before the last chunk's kernels ended.
  EXPECT_LT(out[0].transfer_start_us, out[0].prefill_end_us);
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
  auto stream = decoder.Start("r2", prompt, 12, 9);
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ(Drain(**stream), model::ReferenceGenerate(prompt, 12, Tiny(), 9));
}

}  // namespace
}  // namespace pdserve::prefill
