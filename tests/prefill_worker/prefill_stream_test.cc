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

// Blocks of `cache` holding any non-zero byte (a fresh pool is zeroed): those written so far.
int BlocksWritten(const KvCache& cache) {
  const KvGeometry& g = cache.geometry();
  int written = 0;
  for (uint32_t b = 0; b < g.num_blocks(); ++b) {
    bool any = false;
    for (int f = 0; f < g.fragments_per_block() && !any; ++f) {
      const std::byte* p = cache.base() + g.FragmentOffset(b, f);
      any = std::any_of(p, p + g.transfer_fragment_bytes(),
                        [](std::byte x) { return x != std::byte{0}; });
    }
    written += any ? 1 : 0;
  }
  return written;
}

// A roofline engine with the CPU kernels, as a roofline worker runs them (worker_process.cc):
// K/V written, no attention, 2 blocks per streamed chunk, every prompt claiming its checksum.
PrefillEngineOptions RooflineCpuOptions(const GpuSpec& gpu) {
  PrefillEngineOptions options;
  options.roofline.emplace(Tiny(), gpu);
  options.attention.compute_attention = false;
  options.stream_chunk_tokens = 32;
  options.claim_checksum_bytes = 1;
  options.transfer_timeout = absl::Milliseconds(50);
  return options;
}

// Roofline with the CPU kernels, the host slower than the model: a chunk leaves once its own
// K/V is made, not after the whole prompt's (which made every chunk due meanwhile leave late,
// all at once); the checksum the item claims is still the whole prompt's.
TEST_F(PrefillStreamTest, RooflineChunksDoNotWaitForTheWholePromptsKv) {
  engine_ = MakeEngine(RooflineCpuOptions(*GpuSpecByName("h100")));
  std::vector<int> written_at_submit;
  prefill_transport_.on_submit = [&](const std::string&) {
    written_at_submit.push_back(BlocksWritten(*prefill_cache_));
  };
  decode::DecodeEngine decoder(*decode_cache_, {});
  const std::vector<int32_t> prompt = model::SyntheticPrompt(6, 100, Tiny().vocab_size);
  uint64_t epoch = 0;
  auto blocks = decoder.Allocate("r3", 100, 20, &epoch);  // 7 prompt blocks: 2 + 2 + 2 + 1
  ASSERT_TRUE(blocks.ok());
  // The engine asks before making each chunk after the first: 5 ms each makes the host far
  // slower than tiny's modelled prefill (every chunk due within microseconds).
  std::vector<PrefillItemOutcome> out = engine_->Run(
      {{.request_id = "r3", .prompt = prompt, .decode_worker = "decode-0",
        .decode_blocks = *blocks, .decode_epoch = epoch}},
      [] {
        absl::SleepFor(absl::Milliseconds(5));
        return false;
      });
  ASSERT_TRUE(out[0].status.ok()) << out[0].status;
  EXPECT_THAT(written_at_submit, ElementsAre(2, 4, 6, 7));
  EXPECT_GT(out[0].mock_us, 0);
  const std::vector<BlockId> landed(blocks->begin(), blocks->begin() + 7);
  absl::StatusOr<uint64_t> sum = KvChecksum(*decode_cache_, landed, 0, 100);
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(out[0].kv_checksum, std::optional<uint64_t>(*sum));
  auto stream = decoder.Start("r3", prompt, 20, 6);
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ(Drain(**stream), model::ReferenceGenerate(prompt, 20, Tiny(), 6));
}

// The host faster than the model: the K/V is made ahead, at the host's pace, and each chunk
// still leaves when the modelled prefill reaches its end, not before.
TEST_F(PrefillStreamTest, RooflineMakesKvAheadAndChunksLeaveWhenDue) {
  GpuSpec slow = *GpuSpecByName("h100");
  slow.step_overhead_us = 0;
  const int whole_len[] = {100};
  slow.bf16_tflops *= RooflineModel(Tiny(), slow).PrefillSeconds(whole_len) / 0.2;  // 200 ms
  const RooflineModel roofline(Tiny(), slow);
  engine_ = MakeEngine(RooflineCpuOptions(slow));
  std::vector<int> written_at_submit;
  std::vector<double> seconds_at_submit;
  const absl::Time start = absl::Now();
  prefill_transport_.on_submit = [&](const std::string&) {
    written_at_submit.push_back(BlocksWritten(*prefill_cache_));
    seconds_at_submit.push_back(absl::ToDoubleSeconds(absl::Now() - start));
  };
  decode::DecodeEngine decoder(*decode_cache_, {});
  const std::vector<int32_t> prompt = model::SyntheticPrompt(8, 100, Tiny().vocab_size);
  uint64_t epoch = 0;
  auto blocks = decoder.Allocate("r4", 100, 20, &epoch);
  ASSERT_TRUE(blocks.ok());
  std::vector<PrefillItemOutcome> out =
      engine_->Run({{.request_id = "r4", .prompt = prompt, .decode_worker = "decode-0",
                     .decode_blocks = *blocks, .decode_epoch = epoch}});
  ASSERT_TRUE(out[0].status.ok()) << out[0].status;
  EXPECT_THAT(written_at_submit, ElementsAre(7, 7, 7, 7));
  ASSERT_EQ(seconds_at_submit.size(), 4u);
  const double whole = roofline.PrefillSeconds(whole_len);
  for (int k = 0; k < 4; ++k) {
    const int prefix[] = {std::min(100, 32 * (k + 1))};
    const double due = k == 3 ? whole : roofline.PrefillSeconds(prefix);
    EXPECT_GE(seconds_at_submit[k], due) << "chunk " << k;
  }
  auto stream = decoder.Start("r4", prompt, 20, 8);
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ(Drain(**stream), model::ReferenceGenerate(prompt, 20, Tiny(), 8));
}

// The caller leaves while the K/V is being made chunk by chunk: the item fails Cancelled, no
// chunk after that leaves, its own blocks are free again and nothing is left in flight.
TEST_F(PrefillStreamTest, RooflineItemAbandonedMidPromptFailsAndFreesItsBlocks) {
  engine_ = MakeEngine(RooflineCpuOptions(*GpuSpecByName("h100")));
  const std::vector<int32_t> prompt = model::SyntheticPrompt(7, 100, Tiny().vocab_size);
  std::vector<BlockId> blocks = {10, 11, 12, 13, 14, 15, 16};
  // The engine asks before the item, before its first submit and before each later chunk is
  // made: the caller leaves once the first chunk went.
  bool left = false;
  prefill_transport_.on_submit = [&](const std::string&) { left = true; };
  std::vector<PrefillItemOutcome> out =
      engine_->Run({{.request_id = "r5", .prompt = prompt, .decode_worker = "decode-0",
                     .decode_blocks = blocks, .decode_epoch = 4}},
                   [&] { return left; });
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kCancelled) << out[0].status;
  EXPECT_THAT(prefill_transport_.sent_notifications, ElementsAre(""));  // the first chunk only
  EXPECT_FALSE(out[0].transfer_in_flight);
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
  // Ended in error, nothing more will land: the decode worker may reuse the blocks.
  EXPECT_THAT(engine_->Cancel({{"r5", 4}}, absl::ZeroDuration()),
              ElementsAre(CancelOutcome::kFailed));
}

// Two items in one batch: their chunks, made and sent interleaved in the order they are due,
// land whole, each item's notification after its own chunks, with each item's own checksum.
TEST_F(PrefillStreamTest, RooflineItemsOfOneBatchInterleaveTheirChunks) {
  engine_ = MakeEngine(RooflineCpuOptions(*GpuSpecByName("h100")));
  decode::DecodeEngine decoder(*decode_cache_, {});
  const std::vector<int32_t> a = model::SyntheticPrompt(11, 100, Tiny().vocab_size);
  const std::vector<int32_t> b = model::SyntheticPrompt(12, 40, Tiny().vocab_size);
  uint64_t epoch_a = 0, epoch_b = 0;
  auto blocks_a = decoder.Allocate("ra", 100, 10, &epoch_a);  // 7 prompt blocks: 4 chunks
  auto blocks_b = decoder.Allocate("rb", 40, 10, &epoch_b);   // 3 prompt blocks: 2 chunks
  ASSERT_TRUE(blocks_a.ok() && blocks_b.ok());
  std::vector<PrefillItemOutcome> out = engine_->Run(
      {{.request_id = "ra", .prompt = a, .decode_worker = "decode-0",
        .decode_blocks = *blocks_a, .decode_epoch = epoch_a},
       {.request_id = "rb", .prompt = b, .decode_worker = "decode-0",
        .decode_blocks = *blocks_b, .decode_epoch = epoch_b}});
  ASSERT_TRUE(out[0].status.ok()) << out[0].status;
  ASSERT_TRUE(out[1].status.ok()) << out[1].status;
  EXPECT_EQ(out[0].transfer_batches, 4u);
  EXPECT_EQ(out[1].transfer_batches, 2u);
  for (int i = 0; i < 2; ++i) {
    const std::vector<BlockId>& table = i == 0 ? *blocks_a : *blocks_b;
    const int len = i == 0 ? 100 : 40;
    const std::vector<BlockId> landed(table.begin(), table.begin() + (len + 15) / 16);
    absl::StatusOr<uint64_t> sum = KvChecksum(*decode_cache_, landed, 0, len);
    ASSERT_TRUE(sum.ok());
    EXPECT_EQ(out[i].kv_checksum, std::optional<uint64_t>(*sum)) << "item " << i;
  }
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
  auto stream_a = decoder.Start("ra", a, 10, 11);
  auto stream_b = decoder.Start("rb", b, 10, 12);
  ASSERT_TRUE(stream_a.ok() && stream_b.ok());
  EXPECT_EQ(Drain(**stream_a), model::ReferenceGenerate(a, 10, Tiny(), 11));
  EXPECT_EQ(Drain(**stream_b), model::ReferenceGenerate(b, 10, Tiny(), 12));
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
