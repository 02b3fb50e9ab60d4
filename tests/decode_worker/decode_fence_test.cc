// Fenced KV on the decode engine: blocks of an allocation released before its KV landed stay out
// of the free list until the notification for that (request, epoch), a fenced writer, the
// writer's death or the lease; notifications for other epochs are refused.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "decode_worker/decode_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve::decode {
namespace {

using ::testing::IsEmpty;

std::unique_ptr<KvCache> Pool(uint32_t blocks) {
  return *KvCache::CreateInHostMemory(*PresetConfig("tiny"), blocks, KvLayout::kLayerMajor);
}

const absl::Status kAbort = absl::AbortedError("router gave up");

bool NeverNotified(const std::string&, uint64_t) { return false; }
bool Alive(int32_t) { return true; }

bool Disjoint(std::vector<BlockId> a, std::vector<BlockId> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::vector<BlockId> common;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(common));
  return common.empty();
}

// 8 blocks; "a" takes 3 (40 prompt tokens + 8, 16 per block) and is released unlanded.
class DecodeFenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::vector<BlockId>> blocks = engine_.Allocate("a", 40, 8, &epoch_);
    ASSERT_TRUE(blocks.ok()) << blocks.status();
    a_blocks_ = *blocks;
    ASSERT_NE(epoch_, 0u);
  }

  std::unique_ptr<KvCache> cache_ = Pool(8);
  DecodeEngine engine_{*cache_, {}};
  uint64_t epoch_ = 0;
  std::vector<BlockId> a_blocks_;
};

TEST_F(DecodeFenceTest, ReleasedUnlandedBlocksAreNotHandedOutUntilTheirNotification) {
  ASSERT_TRUE(engine_.Release("a", kAbort).ok());
  DecodeCapacity c = engine_.Capacity();
  EXPECT_EQ(c.quarantined_blocks, 3u);
  EXPECT_EQ(c.quarantined_requests, 1u);
  EXPECT_EQ(c.free_blocks, 5u);
  EXPECT_EQ(c.reserved_blocks, 0u);
  // 6 blocks would need a quarantined one.
  EXPECT_EQ(engine_.Allocate("b", 80, 8).status().code(), absl::StatusCode::kResourceExhausted);
  absl::StatusOr<std::vector<BlockId>> b = engine_.Allocate("b", 70, 8);  // 5 blocks
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(Disjoint(*b, a_blocks_));
  ASSERT_TRUE(engine_.Release("b", kAbort, {.writer_fenced = true}).ok());

  // The late KV lands: the quarantine ends and every block is free again.
  EXPECT_EQ(engine_.KvLanded("a", epoch_).code(), absl::StatusCode::kAborted);
  c = engine_.Capacity();
  EXPECT_EQ(c.quarantined_blocks, 0u);
  EXPECT_EQ(c.free_blocks, 8u);
  EXPECT_TRUE(cache_->allocator().CheckAllFree().ok());
}

TEST_F(DecodeFenceTest, NotificationForAnotherEpochIsRefused) {
  ASSERT_TRUE(engine_.Release("a", kAbort).ok());
  uint64_t second = 0;
  ASSERT_TRUE(engine_.Allocate("a", 16, 8, &second).ok());  // the same id, a new reservation
  EXPECT_NE(second, epoch_);
  EXPECT_EQ(engine_.KvLanded("a", epoch_ + second).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine_.Capacity().quarantined_blocks, 3u);
  ASSERT_TRUE(engine_.Lease("a").ok());
  EXPECT_FALSE(engine_.Lease("a")->kv_landed);
  // The new reservation's own notification is accepted; the old one's lifts only its quarantine.
  EXPECT_TRUE(engine_.KvLanded("a", second).ok());
  EXPECT_TRUE(engine_.Lease("a")->kv_landed);
  EXPECT_EQ(engine_.KvLanded("a", epoch_).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(engine_.Capacity().quarantined_blocks, 0u);
  // Once consumed, the old epoch is unknown: a replay is refused.
  EXPECT_EQ(engine_.KvLanded("a", epoch_).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(DecodeFenceTest, ReleaseNamingAnOlderEpochLeavesTheCurrentReservation) {
  ASSERT_TRUE(engine_.Release("a", kAbort, {.writer_fenced = true}).ok());
  uint64_t second = 0;
  ASSERT_TRUE(engine_.Allocate("a", 40, 8, &second).ok());
  EXPECT_EQ(engine_.Release("a", kAbort, {.epoch = epoch_, .writer_fenced = true}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine_.Capacity().free_blocks, 5u);
  EXPECT_EQ(engine_.Lease("a")->epoch, second);
}

TEST_F(DecodeFenceTest, LandedAllocationIsFreedAtOnce) {
  ASSERT_TRUE(engine_.KvLanded("a", epoch_).ok());
  ASSERT_TRUE(engine_.Release("a", kAbort).ok());
  EXPECT_EQ(engine_.Capacity().quarantined_blocks, 0u);
  EXPECT_TRUE(cache_->allocator().CheckAllFree().ok());
}

TEST_F(DecodeFenceTest, LaterReleaseWithFencedWriterLiftsTheQuarantine) {
  ASSERT_TRUE(engine_.Release("a", kAbort).ok());  // e.g. Decode's wait for the KV timed out
  ASSERT_TRUE(engine_.Release("a", kAbort, {.epoch = epoch_, .writer_fenced = true}).ok());
  EXPECT_EQ(engine_.Capacity().quarantined_blocks, 0u);
  EXPECT_TRUE(cache_->allocator().CheckAllFree().ok());
}

TEST_F(DecodeFenceTest, QuarantineEndsWhenTheWritersProcessIsGone) {
  ASSERT_TRUE(engine_.Release("a", kAbort, {.writer = "prefill-0", .writer_pid = 4242}).ok());
  EXPECT_THAT(engine_.SweepQuarantine(absl::Hours(1), NeverNotified, Alive), IsEmpty());
  EXPECT_EQ(engine_.Capacity().quarantined_blocks, 3u);
  std::vector<LiftedQuarantine> lifted = engine_.SweepQuarantine(
      absl::Hours(1), NeverNotified, [](int32_t pid) { return pid != 4242; });
  ASSERT_EQ(lifted.size(), 1u);
  EXPECT_EQ(lifted[0].request_id, "a");
  EXPECT_EQ(lifted[0].epoch, epoch_);
  EXPECT_EQ(lifted[0].blocks, 3u);
  EXPECT_EQ(lifted[0].writer, "prefill-0");
  EXPECT_EQ(lifted[0].why, LiftedQuarantine::Why::kWriterGone);
  EXPECT_TRUE(cache_->allocator().CheckAllFree().ok());
}

TEST_F(DecodeFenceTest, UnknownWriterIsFencedOnlyByTheLease) {
  ASSERT_TRUE(engine_.Release("a", kAbort).ok());
  auto dead = [](int32_t) { return false; };
  EXPECT_THAT(engine_.SweepQuarantine(absl::Hours(1), NeverNotified, dead), IsEmpty());
  std::vector<LiftedQuarantine> lifted =
      engine_.SweepQuarantine(absl::ZeroDuration(), NeverNotified, dead);
  ASSERT_EQ(lifted.size(), 1u);
  EXPECT_EQ(lifted[0].why, LiftedQuarantine::Why::kLeaseExpired);
  EXPECT_TRUE(cache_->allocator().CheckAllFree().ok());
}

TEST_F(DecodeFenceTest, SweepLiftsQuarantineWhoseNotificationArrived) {
  ASSERT_TRUE(engine_.Release("a", kAbort).ok());
  std::vector<std::pair<std::string, uint64_t>> asked;
  std::vector<LiftedQuarantine> lifted = engine_.SweepQuarantine(
      absl::Hours(1),
      [&](const std::string& id, uint64_t epoch) {
        asked.emplace_back(id, epoch);
        return true;
      },
      Alive);
  EXPECT_THAT(asked, ::testing::ElementsAre(std::make_pair(std::string("a"), epoch_)));
  ASSERT_EQ(lifted.size(), 1u);
  EXPECT_EQ(lifted[0].why, LiftedQuarantine::Why::kNotified);
  EXPECT_TRUE(cache_->allocator().CheckAllFree().ok());
}

TEST_F(DecodeFenceTest, ExpiredUnlandedAllocationIsQuarantined) {
  EXPECT_THAT(engine_.ExpireAllocations(absl::ZeroDuration()), ::testing::ElementsAre("a"));
  EXPECT_EQ(engine_.Capacity().quarantined_blocks, 3u);
  EXPECT_EQ(engine_.Capacity().free_blocks, 5u);
}

TEST_F(DecodeFenceTest, StartedRequestIsNotQuarantinedOnRelease) {
  absl::StatusOr<std::shared_ptr<DecodeStream>> stream =
      engine_.Start("a", std::vector<int32_t>(40, 1), 8, 0);
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_TRUE(engine_.Release("a", kAbort).ok());
  EXPECT_EQ(engine_.Capacity().quarantined_blocks, 0u);
  EXPECT_TRUE(cache_->allocator().CheckAllFree().ok());
}

}  // namespace
}  // namespace pdserve::decode
