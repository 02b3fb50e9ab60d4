// Destinations that follow their Prefill call (PrefillItemSpec::destination_follows): the
// router asks the decode worker for blocks alongside the prefill (router/run_batch.cc), and the
// item's transfer waits for them.

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/roofline.h"
#include "common/synthetic_model.h"
#include "decode_worker/decode_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prefill_worker/destination_board.h"
#include "prefill_worker/prefill_engine.h"
#include "tests/prefill_worker/two_pools.h"

namespace pdserve::prefill {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

class DestinationFollowsTest : public TwoPoolsTest {
 protected:
  std::unique_ptr<PrefillEngine> Engine(absl::Duration transfer_timeout = absl::Seconds(30),
                                        absl::Duration min_batch = absl::ZeroDuration()) {
    PrefillEngineOptions options;
    options.chunk_tokens = 16;
    options.transfer_timeout = transfer_timeout;
    options.min_batch = min_batch;
    return MakeEngine(options, 64);
  }

  PrefillItemSpec Follows(const std::string& id, const std::vector<int32_t>& prompt,
                          uint64_t epoch) {
    return {.request_id = id, .prompt = prompt, .decode_worker = "decode-0",
            .decode_epoch = epoch, .destination_follows = true};
  }

};

// The blocks come while the kernels run (posted from another thread after the Run started),
// or before the item itself: either way the tokens are the model's.
TEST_F(DestinationFollowsTest, BlocksPostedDuringOrBeforeThePrefillGiveTheModelsTokens) {
  for (bool before : {false, true}) {
    SCOPED_TRACE(before ? "posted before the item" : "posted while it runs");
    auto engine = Engine();
    decode::DecodeEngine decoder(*decode_cache_, {});
    const std::string id = before ? "early" : "late";
    const std::vector<int32_t> prompt = model::SyntheticPrompt(7, 100, Tiny().vocab_size);
    const uint64_t epoch = 0x5eed0001 + (before ? 1 : 0);
    uint64_t granted = 0;
    auto blocks = decoder.Allocate(id, 100, 12, &granted, epoch);
    ASSERT_TRUE(blocks.ok()) << blocks.status();
    ASSERT_EQ(granted, epoch);  // the epoch the router chose
    if (before) {
      ASSERT_TRUE(engine->PostDestination(id, epoch, *blocks).ok());
    }
    std::thread poster;
    if (!before) {
      poster = std::thread([&] {
        absl::SleepFor(absl::Milliseconds(50));
        ASSERT_TRUE(engine->PostDestination(id, epoch, *blocks).ok());
      });
    }
    std::vector<PrefillItemOutcome> out = engine->Run({Follows(id, prompt, epoch)});
    if (poster.joinable()) poster.join();
    ASSERT_EQ(out.size(), 1u);
    ASSERT_TRUE(out[0].status.ok()) << out[0].status;
    EXPECT_THAT(prefill_transport_.sent_notifications.back(), absl::StrCat(id, "@", epoch));
    ASSERT_TRUE(decoder.KvLanded(id, epoch).ok());
    auto stream = decoder.Start(id, prompt, 12, 3);
    ASSERT_TRUE(stream.ok()) << stream.status();
    EXPECT_EQ(Drain(**stream), model::ReferenceGenerate(prompt, 12, Tiny(), 3));
    EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
  }
}

// Two items in one batch, the first one's blocks late (its decode worker is slow to answer the
// router): the second one's KV leaves without waiting for them, and the first one's when they
// come. Its destination was waited for in the batch's loop before, so a stopped decode worker
// failed the other items of its batch too (fault bench: "cancelled before its prefill").
// With real kernels the KV leaves after the kernels, or chunk by chunk while they run
// (--stream-chunk-tokens, whose first chunk waited for the blocks before); roofline likewise.
enum class Mode { kKernels, kStreamed, kRoofline };

TEST_F(DestinationFollowsTest, ALateDestinationHoldsUpOnlyItsOwnItem) {
  for (Mode mode : {Mode::kKernels, Mode::kStreamed, Mode::kRoofline}) {
    const int m = static_cast<int>(mode);
    const bool roofline = mode == Mode::kRoofline;
    SCOPED_TRACE(m);
    PrefillEngineOptions options;
    options.chunk_tokens = 16;
    options.transfer_timeout = absl::Seconds(30);
    if (mode == Mode::kStreamed) options.stream_chunk_tokens = 16;
    if (roofline) options.roofline.emplace(Tiny(), *GpuSpecByName("h100"));
    auto engine = MakeEngine(options, 64);
    decode::DecodeEngine decoder(*decode_cache_, {});
    const std::vector<int32_t> prompt = model::SyntheticPrompt(4, 40, Tiny().vocab_size);
    const std::string late = absl::StrCat("late-", m), on_time = absl::StrCat("on-", m);
    uint64_t e1 = 0, e2 = 0;
    auto b1 = decoder.Allocate(late, 40, 4, &e1, 0x7001 + 2 * m);
    auto b2 = decoder.Allocate(on_time, 40, 4, &e2, 0x7002 + 2 * m);
    ASSERT_TRUE(b1.ok() && b2.ok());
    ASSERT_TRUE(engine->PostDestination(on_time, e2, *b2).ok());
    absl::Notification on_time_sent;
    const std::string on_time_note = absl::StrCat(on_time, "@", e2);
    prefill_transport_.on_submit = [&](const std::string& note) {
      if (note == on_time_note && !on_time_sent.HasBeenNotified()) on_time_sent.Notify();
    };
    bool sent_first = false;
    std::thread poster([&] {
      sent_first = on_time_sent.WaitForNotificationWithTimeout(absl::Seconds(5));
      ASSERT_TRUE(engine->PostDestination(late, e1, *b1).ok());
    });
    std::vector<PrefillItemOutcome> out =
        engine->Run({Follows(late, prompt, e1), Follows(on_time, prompt, e2)});
    poster.join();
    prefill_transport_.on_submit = nullptr;
    EXPECT_TRUE(sent_first) << "the on-time item's KV waited for the late item's blocks";
    ASSERT_EQ(out.size(), 2u);
    EXPECT_TRUE(out[0].status.ok()) << out[0].status;
    EXPECT_TRUE(out[1].status.ok()) << out[1].status;
    EXPECT_TRUE(decoder.KvLanded(late, e1).ok());
    EXPECT_TRUE(decoder.KvLanded(on_time, e2).ok());
    for (const auto& [id, seed] : {std::pair{late, 4}, std::pair{on_time, 4}}) {
      auto stream = decoder.Start(id, prompt, 4, seed);
      ASSERT_TRUE(stream.ok()) << stream.status();
      EXPECT_EQ(Drain(**stream), model::ReferenceGenerate(prompt, 4, Tiny(), seed));
    }
    EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
  }
}

// Blocks that never come (their decode worker stopped) fail only their own item, by the time
// the batch must answer the router and naming that decode worker; the other item's KV landed.
TEST_F(DestinationFollowsTest, BlocksStillMissingWhenTheBatchMustAnswerFailOnlyTheirItem) {
  for (bool streamed : {false, true}) {
    SCOPED_TRACE(streamed ? "streamed chunks" : "after the kernels");
    PrefillEngineOptions options;
    options.chunk_tokens = 16;
    options.transfer_timeout = absl::Seconds(30);
    if (streamed) options.stream_chunk_tokens = 16;
    auto engine = MakeEngine(options, 64);
    decode::DecodeEngine decoder(*decode_cache_, {});
    const std::vector<int32_t> prompt = model::SyntheticPrompt(4, 40, Tiny().vocab_size);
    const std::string fine = streamed ? "fine-s" : "fine", never = streamed ? "never-s" : "never";
    uint64_t e = 0;
    auto blocks = decoder.Allocate(fine, 40, 4, &e, 0x7101 + (streamed ? 2 : 0));
    ASSERT_TRUE(blocks.ok());
    ASSERT_TRUE(engine->PostDestination(fine, e, *blocks).ok());
    const absl::Time start = absl::Now();
    std::vector<PrefillItemOutcome> out = engine->Run(
        {Follows(never, prompt, 0x7102 + (streamed ? 2 : 0)), Follows(fine, prompt, e)}, nullptr,
        absl::Now() + absl::Milliseconds(300));
    EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "waited for transfer_timeout";
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].status.code(), absl::StatusCode::kDeadlineExceeded) << out[0].status;
    EXPECT_THAT(std::string(out[0].status.message()), HasSubstr("decode worker decode-0"));
    EXPECT_TRUE(out[1].status.ok()) << out[1].status;
    EXPECT_TRUE(decoder.KvLanded(fine, e).ok());
    EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
  }
}

// The decode worker had no room (or could not be asked): the item sends nothing, fails with
// what the router said, and its own blocks are free again.
TEST_F(DestinationFollowsTest, AnErrorInsteadOfBlocksFailsTheItemAndSendsNothing) {
  auto engine = Engine();
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 40, Tiny().vocab_size);
  ASSERT_TRUE(engine
                  ->PostDestination("full", 9,
                                    absl::UnavailableError("decode worker decode-0 has no room"))
                  .ok());
  auto out = engine->Run({Follows("full", prompt, 9)});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(out[0].status.message()), HasSubstr("has no room"));
  EXPECT_EQ(out[0].transfer_end_us, 0);
  EXPECT_THAT(prefill_transport_.sent_notifications, IsEmpty());
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
  // The fence knows it ended before any transfer: nothing of it can land.
  EXPECT_EQ(engine->Cancel({{"full", 9}}, absl::ZeroDuration())[0], CancelOutcome::kFailed);
}

TEST_F(DestinationFollowsTest, BlocksThatNeverComeFailTheItemAfterTheTransferTimeout) {
  auto engine = Engine(absl::Milliseconds(200));
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 40, Tiny().vocab_size);
  auto out = engine->Run({Follows("lost", prompt, 3)});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(out[0].status.message()), HasSubstr("did not come"));
  EXPECT_THAT(prefill_transport_.sent_notifications, IsEmpty());
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
}

// A Cancel (the router gave up) ends the wait at once, not after transfer_timeout.
TEST_F(DestinationFollowsTest, ACancelEndsTheWaitForBlocks) {
  auto engine = Engine(absl::Seconds(60));
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 40, Tiny().vocab_size);
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_EQ(engine->Cancel({{"gone", 4}}, absl::Seconds(5))[0], CancelOutcome::kCancelled);
  });
  const absl::Time start = absl::Now();
  auto out = engine->Run({Follows("gone", prompt, 4)});
  canceller.join();
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kCancelled);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_THAT(prefill_transport_.sent_notifications, IsEmpty());
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
  // The blocks posted later find nobody: the item is not run again.
  ASSERT_TRUE(engine->PostDestination("gone", 4, std::vector<BlockId>{0, 1, 2}).ok());
  EXPECT_THAT(prefill_transport_.sent_notifications, IsEmpty());
}

// Posted blocks are another process's word: checked as those given with the item are.
TEST_F(DestinationFollowsTest, PostedBlocksAreCheckedLikeGivenOnes) {
  auto engine = Engine();
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 40, Tiny().vocab_size);  // 3 blocks
  ASSERT_TRUE(engine->PostDestination("short", 1, std::vector<BlockId>{0, 1}).ok());
  ASSERT_TRUE(engine->PostDestination("twice", 1, std::vector<BlockId>{0, 1, 1}).ok());
  ASSERT_TRUE(engine->PostDestination("outside", 1, std::vector<BlockId>{0, 1, 64}).ok());
  auto out = engine->Run({Follows("short", prompt, 1), Follows("twice", prompt, 1),
                          Follows("outside", prompt, 1)});
  ASSERT_EQ(out.size(), 3u);
  for (const auto& o : out) EXPECT_EQ(o.status.code(), absl::StatusCode::kInvalidArgument) << o.status;
  EXPECT_THAT(std::string(out[0].status.message()), HasSubstr("got 2 destination blocks"));
  EXPECT_THAT(std::string(out[1].status.message()), HasSubstr("block 1 is named twice"));
  EXPECT_THAT(std::string(out[2].status.message()), HasSubstr("block 64 is outside"));
  EXPECT_THAT(prefill_transport_.sent_notifications, IsEmpty());
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
}

TEST_F(DestinationFollowsTest, BlocksGivenWithAnItemWhoseBlocksFollowAreRefused) {
  auto engine = Engine();
  const std::vector<int32_t> prompt = model::SyntheticPrompt(1, 10, Tiny().vocab_size);
  PrefillItemSpec item = Follows("both", prompt, 1);
  item.decode_blocks = {0};
  auto out = engine->Run({item});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(prefill_transport_.sent_notifications, IsEmpty());
}

TEST(DestinationBoardTest, BoundedOnePostPerItemAndATakeStopsWhenAsked) {
  DestinationBoard board;
  ASSERT_TRUE(board.Post({"a", 1}, std::vector<BlockId>{5}).ok());
  EXPECT_EQ(board.Post({"a", 1}, std::vector<BlockId>{6}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(*board.Take({"a", 1}, absl::Seconds(1), nullptr), ::testing::ElementsAre(5));
  EXPECT_EQ(board.pending(), 0u);
  for (size_t i = 0; i < DestinationBoard::kMaxPending; ++i) {
    ASSERT_TRUE(board.Post({absl::StrCat("r", i), 1}, std::vector<BlockId>{}).ok());
  }
  EXPECT_EQ(board.Post({"one-too-many", 1}, std::vector<BlockId>{}).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(board.Take({"never", 1}, absl::Seconds(30), [] { return true; }).status().code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(board.Take({"never", 1}, absl::Milliseconds(20), nullptr).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

// The epoch a router chose must be new on the decode worker: it names reservations there.
TEST(DecodeChosenEpochTest, AChosenEpochInUseIsRefused) {
  auto cache = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
  decode::DecodeEngine decoder(*cache, {});
  uint64_t epoch = 0;
  ASSERT_TRUE(decoder.Allocate("a", 10, 4, &epoch, 77).ok());
  EXPECT_EQ(epoch, 77u);
  EXPECT_EQ(decoder.Lease("a")->epoch, 77u);
  EXPECT_EQ(decoder.Allocate("b", 10, 4, &epoch, 77).status().code(),
            absl::StatusCode::kAlreadyExists);
  // The worker's own epochs step over chosen ones.
  ASSERT_TRUE(decoder.Allocate("c", 10, 4, &epoch).ok());
  EXPECT_NE(epoch, 77u);
}

}  // namespace
}  // namespace pdserve::prefill
