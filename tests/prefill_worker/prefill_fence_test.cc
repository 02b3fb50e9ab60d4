// The prefill engine's side of fenced KV: it refuses destinations the decode worker cannot have
// granted, and a cancelled item never reaches the transport.
#include <set>
#include <thread>

#include "absl/synchronization/notification.h"

#include "common/synthetic_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prefill_worker/prefill_engine.h"
#include "tests/prefill_worker/two_pools.h"

namespace pdserve::prefill {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class PrefillFenceTest : public TwoPoolsTest {
 protected:
  PrefillFenceTest() : TwoPoolsTest(/*decode_blocks=*/32) {}
  void SetUp() override {
    TwoPoolsTest::SetUp();
    engine_ = MakeEngine({.chunk_tokens = 16}, 32);
  }

  // 40 tokens: 3 blocks.
  PrefillItemSpec Item(const std::string& id, std::vector<BlockId> blocks, uint64_t epoch = 5) {
    return {.request_id = id,
            .prompt = model::SyntheticPrompt(1, 40, Tiny().vocab_size),
            .decode_worker = "decode-0",
            .decode_blocks = std::move(blocks),
            .decode_epoch = epoch};
  }

  std::unique_ptr<PrefillEngine> engine_;
};

TEST_F(PrefillFenceTest, ItemWithoutEpochIsRefused) {
  auto out = engine_->Run({Item("a", {0, 1, 2}, /*epoch=*/0)});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(prefill_transport_.sent_notifications, IsEmpty());
}

TEST_F(PrefillFenceTest, BlockOutsideThePeersPoolIsRefused) {
  auto out = engine_->Run({Item("a", {30, 31, 32}), Item("b", {0, 1, 2})});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out[0].status.message()), ::testing::HasSubstr("outside"));
  EXPECT_TRUE(out[1].status.ok()) << out[1].status;
  EXPECT_THAT(prefill_transport_.sent_notifications, ElementsAre("b@5"));
}

TEST_F(PrefillFenceTest, PromptLongerThanTheModelOrOverlongIdIsRefused) {
  PrefillItemSpec huge = Item("huge", {0, 1, 2});
  huge.prompt.assign(Tiny().max_model_len + 1, 7);
  PrefillItemSpec long_id =
      Item(std::string(PrefillEngine::kMaxRequestIdBytes + 1, 'x'), {3, 4, 5});
  auto out = engine_->Run({huge, long_id, Item("ok", {6, 7, 8})});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kInvalidArgument) << out[0].status;
  EXPECT_THAT(std::string(out[0].status.message()),
              ::testing::HasSubstr("prompt of 4097 tokens (at most max_model_len 4096)"));
  EXPECT_EQ(out[1].status.code(), absl::StatusCode::kInvalidArgument) << out[1].status;
  EXPECT_THAT(std::string(out[1].status.message()), ::testing::HasSubstr("id of 1025 bytes"));
  EXPECT_TRUE(out[2].status.ok()) << out[2].status;
  EXPECT_THAT(prefill_transport_.sent_notifications, ElementsAre("ok@5"));
}

TEST_F(PrefillFenceTest, BlockNamedTwiceIsRefused) {
  auto out = engine_->Run({Item("a", {4, 5, 4})});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(prefill_transport_.sent_notifications, IsEmpty());
}

TEST_F(PrefillFenceTest, ItemCancelledBeforeItArrivesWritesNothing) {
  EXPECT_THAT(engine_->Cancel({{"a", 5}}, absl::ZeroDuration()),
              ElementsAre(CancelOutcome::kNotStarted));
  auto out = engine_->Run({Item("a", {0, 1, 2}), Item("b", {3, 4, 5})});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(out[1].status.ok());
  EXPECT_THAT(prefill_transport_.sent_notifications, ElementsAre("b@5"));
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
}

TEST_F(PrefillFenceTest, AbandonedBatchSubmitsNothingAndCancelSaysSo) {
  auto out = engine_->Run({Item("a", {0, 1, 2}), Item("b", {3, 4, 5})}, [] { return true; });
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(out[1].status.code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(prefill_transport_.sent_notifications, IsEmpty());
  EXPECT_THAT(engine_->Cancel({{"a", 5}, {"b", 5}}, absl::ZeroDuration()),
              ElementsAre(CancelOutcome::kCancelled, CancelOutcome::kCancelled));
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
}

TEST_F(PrefillFenceTest, CancelAfterTheTransferReportsItCompleted) {
  auto out = engine_->Run({Item("a", {0, 1, 2})});
  ASSERT_TRUE(out[0].status.ok()) << out[0].status;
  EXPECT_THAT(engine_->Cancel({{"a", 5}}, absl::ZeroDuration()),
              ElementsAre(CancelOutcome::kCompleted));
  // A replay of the same item would write the blocks again: refused.
  out = engine_->Run({Item("a", {0, 1, 2})});
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(prefill_transport_.sent_notifications, ElementsAre("a@5"));
}

// A Prefill call must answer before its RPC deadline: the transfer wait is cut to what is left
// of it, and the error then names this worker as well as the peer (the bench counts a failure
// against the workers its message names).
TEST_F(PrefillFenceTest, TransferWaitIsCutByTheCallsDeadlineAndNamesThisWorker) {
  PrefillEngine engine(*prefill_cache_, prefill_transport_,
                       PrefillEngineOptions{.transfer_timeout = absl::Seconds(30),
                                            .worker_id = "prefill-7"});
  ASSERT_TRUE(engine.AddPeer("decode-0", *decode_transport_.ExportDescriptor(), 32).ok());
  prefill_transport_.stall_transfers = true;
  const absl::Time answer_by = absl::Now() + absl::Milliseconds(100);
  auto out = engine.Run({Item("a", {0, 1, 2})}, [] { return false; }, answer_by);
  ASSERT_EQ(prefill_transport_.waits.size(), 1u);
  EXPECT_LE(prefill_transport_.waits[0], absl::Milliseconds(100));
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(out[0].transfer_in_flight);
  EXPECT_THAT(std::string(out[0].status.message()),
              ::testing::AllOf(::testing::HasSubstr("KV transfer to decode-0"),
                               ::testing::HasSubstr("deadline on prefill worker prefill-7")));
}

// A stranded transfer that ends while no Run comes (a draining worker) must not keep a Cancel
// waiting: the third fault run saw a Cancel unanswered for 7 s hold its batch and a drain.
TEST_F(PrefillFenceTest, CancelSeesAStrandedTransferEndWithoutAnotherRun) {
  PrefillEngine engine(*prefill_cache_, prefill_transport_,
                       PrefillEngineOptions{.transfer_timeout = absl::Milliseconds(10)});
  ASSERT_TRUE(engine.AddPeer("decode-0", *decode_transport_.ExportDescriptor(), 32).ok());
  prefill_transport_.stall_transfers = true;
  auto out = engine.Run({Item("a", {0, 1, 2})});
  ASSERT_TRUE(out[0].transfer_in_flight);
  EXPECT_THAT(engine.Cancel({{"a", 5}}, absl::Milliseconds(50)),
              ElementsAre(CancelOutcome::kInFlight));
  prefill_transport_.stall_transfers = false;  // the transfer ends; no Run follows
  EXPECT_THAT(engine.Cancel({{"a", 5}}, absl::Seconds(5)),
              ElementsAre(CancelOutcome::kCompleted));
}

// Transfers to one peer (a SIGSTOPped decode worker) never end: Wait sleeps its whole timeout.
class StallingTransport final : public FakeTransport {
 public:
  absl::StatusOr<transfer::TransferId> Submit(transfer::PeerId peer,
                                              std::span<const transfer::BlockCopy> copies,
                                              const std::string& notification) override {
    absl::StatusOr<transfer::TransferId> id = FakeTransport::Submit(peer, copies, notification);
    absl::MutexLock lock(&mu_);
    if (id.ok() && peer == stalled_peer) stalled_.insert(*id);
    return id;
  }
  absl::Status Wait(transfer::TransferId id, absl::Duration timeout) override {
    bool stalled;
    {
      absl::MutexLock lock(&mu_);
      stalled = stalled_.contains(id);
    }
    if (!stalled) return FakeTransport::Wait(id, timeout);
    if (!in_stalled_wait.HasBeenNotified()) in_stalled_wait.Notify();
    absl::SleepFor(timeout);
    return absl::DeadlineExceededError("transfer still in flight");
  }
  absl::StatusOr<bool> Poll(transfer::TransferId) override { return false; }

  transfer::PeerId stalled_peer = 0;
  absl::Notification in_stalled_wait;

 private:
  absl::Mutex mu_;
  std::set<transfer::TransferId> stalled_ ABSL_GUARDED_BY(mu_);
};

// A batch waiting on a stalled decode peer must not hold up the next batch, for a healthy
// peer, until that one's deadline has passed (the fourth fault run: 6 requests for a healthy
// decode worker failed behind a batch for a SIGSTOPped one).
TEST_F(PrefillFenceTest, ABatchWaitingOnAStalledPeerDoesNotHoldUpTheNext) {
  StallingTransport transport;
  ASSERT_TRUE(transport.RegisterPool(*prefill_cache_).ok());
  PrefillEngine engine(*prefill_cache_, transport,
                       PrefillEngineOptions{.transfer_timeout = absl::Seconds(3)});
  ASSERT_TRUE(engine.AddPeer("decode-0", *decode_transport_.ExportDescriptor(), 32).ok());
  ASSERT_TRUE(engine.AddPeer("decode-1", *decode_transport_.ExportDescriptor(), 32).ok());
  transport.stalled_peer = 1;  // decode-0's: the fake numbers peers from 1
  std::vector<PrefillItemOutcome> stuck;
  std::thread first([&] { stuck = engine.Run({Item("a", {0, 1, 2})}); });
  ASSERT_TRUE(transport.in_stalled_wait.WaitForNotificationWithTimeout(absl::Seconds(30)));
  PrefillItemSpec healthy = Item("b", {3, 4, 5});
  healthy.decode_worker = "decode-1";
  const auto out = engine.Run({healthy}, nullptr, absl::Now() + absl::Milliseconds(1500));
  first.join();
  EXPECT_TRUE(out[0].status.ok()) << out[0].status;
  // Its transfer was waited for with time to spare, not after "a"'s 3 s wait (then 0).
  ASSERT_FALSE(transport.waits.empty());
  EXPECT_GT(transport.waits.back(), absl::ZeroDuration());
  EXPECT_EQ(stuck[0].status.code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(PrefillFenceTest, TransferTimeoutWithoutACallDeadlineNamesOnlyThePeer) {
  PrefillEngine engine(*prefill_cache_, prefill_transport_,
                       PrefillEngineOptions{.transfer_timeout = absl::Milliseconds(50),
                                            .worker_id = "prefill-7"});
  ASSERT_TRUE(engine.AddPeer("decode-0", *decode_transport_.ExportDescriptor(), 32).ok());
  prefill_transport_.stall_transfers = true;
  auto out = engine.Run({Item("a", {0, 1, 2})});
  ASSERT_EQ(prefill_transport_.waits.size(), 1u);
  EXPECT_EQ(prefill_transport_.waits[0], absl::Milliseconds(50));
  EXPECT_EQ(out[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(out[0].status.message()),
              ::testing::Not(::testing::HasSubstr("prefill-7")));
}

TEST_F(PrefillFenceTest, ItemQueuedBehindABatchIsCancelledBeforeItRuns) {
  PrefillEngine slow(*prefill_cache_, prefill_transport_,
                     PrefillEngineOptions{.min_batch = absl::Milliseconds(300)});
  ASSERT_TRUE(slow.AddPeer("decode-0", *decode_transport_.ExportDescriptor(), 32).ok());
  std::vector<PrefillItemOutcome> first, second;
  absl::Notification a_running;
  std::thread running([&] {
    first = slow.Run({Item("a", {0, 1, 2})}, [&a_running] {
      if (!a_running.HasBeenNotified()) a_running.Notify();
      return false;
    });
  });
  if (!a_running.WaitForNotificationWithTimeout(absl::Seconds(30))) {
    running.join();
    FAIL() << "the first batch never asked whether it was abandoned";
  }
  // "a" holds the engine for 300 ms from here.
  std::thread queued([&] { second = slow.Run({Item("b", {3, 4, 5})}); });
  const std::vector<CancelOutcome> cancelled = slow.Cancel({{"b", 5}}, absl::Seconds(30));
  running.join();
  queued.join();
  // Either the Cancel found "b" waiting (cancelled) or overtook its Prefill (refused on arrival).
  ASSERT_EQ(cancelled.size(), 1u);
  if (cancelled[0] == CancelOutcome::kCancelled) {
    EXPECT_EQ(second[0].status.code(), absl::StatusCode::kCancelled);
  } else {
    EXPECT_EQ(cancelled[0], CancelOutcome::kNotStarted);
    EXPECT_EQ(second[0].status.code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_TRUE(first[0].status.ok());
  EXPECT_THAT(prefill_transport_.sent_notifications, ElementsAre("a@5"));
  EXPECT_TRUE(prefill_cache_->allocator().CheckAllFree().ok());
}

}  // namespace
}  // namespace pdserve::prefill
