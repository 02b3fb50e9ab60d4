// ItemFence: what a Cancel answers at each point of an item's life on a prefill worker.
#include "prefill_worker/item_fence.h"

#include <thread>

#include "gtest/gtest.h"

namespace pdserve::prefill {
namespace {

const ItemFence::Key kItem{"r1", 7};

TEST(ItemFenceTest, CancelBeforeArrivalMakesAdmitRefuseTheItem) {
  ItemFence fence;
  EXPECT_EQ(fence.Cancel(kItem, absl::ZeroDuration()), CancelOutcome::kNotStarted);
  EXPECT_EQ(fence.Admit(kItem).code(), absl::StatusCode::kFailedPrecondition);
  // Another reservation of the same request is another item.
  EXPECT_TRUE(fence.Admit({"r1", 8}).ok());
}

TEST(ItemFenceTest, CancelOfAdmittedItemStopsItsSubmit) {
  ItemFence fence;
  ASSERT_TRUE(fence.Admit(kItem).ok());
  EXPECT_EQ(fence.Cancel(kItem, absl::ZeroDuration()), CancelOutcome::kCancelled);
  EXPECT_TRUE(fence.Cancelled(kItem));
  EXPECT_FALSE(fence.BeginSubmit(kItem));
  fence.Finish(kItem, /*submitted=*/false, /*ok=*/false, /*in_flight=*/false);
  EXPECT_EQ(fence.Cancel(kItem, absl::ZeroDuration()), CancelOutcome::kCancelled);
}

TEST(ItemFenceTest, CancelOfSubmittedItemWaitsForItsEnd) {
  ItemFence fence;
  ASSERT_TRUE(fence.Admit(kItem).ok());
  ASSERT_TRUE(fence.BeginSubmit(kItem));
  EXPECT_EQ(fence.Cancel(kItem, absl::ZeroDuration()), CancelOutcome::kInFlight);
  std::thread finisher([&fence] {
    absl::SleepFor(absl::Milliseconds(50));
    fence.Finish(kItem, /*submitted=*/true, /*ok=*/true, /*in_flight=*/false);
  });
  EXPECT_EQ(fence.Cancel(kItem, absl::Seconds(30)), CancelOutcome::kCompleted);
  finisher.join();
}

TEST(ItemFenceTest, TransferStillInFlightIsReportedUntilItEnds) {
  ItemFence fence;
  ASSERT_TRUE(fence.Admit(kItem).ok());
  ASSERT_TRUE(fence.BeginSubmit(kItem));
  fence.Finish(kItem, /*submitted=*/true, /*ok=*/false, /*in_flight=*/true);
  EXPECT_EQ(fence.Cancel(kItem, absl::ZeroDuration()), CancelOutcome::kInFlight);
  fence.Finish(kItem, /*submitted=*/true, /*ok=*/false, /*in_flight=*/false);
  EXPECT_EQ(fence.Cancel(kItem, absl::ZeroDuration()), CancelOutcome::kFailed);
}

TEST(ItemFenceTest, ReplayOfAnItemThatRanIsRefused) {
  ItemFence fence;
  ASSERT_TRUE(fence.Admit(kItem).ok());
  ASSERT_TRUE(fence.BeginSubmit(kItem));
  fence.Finish(kItem, true, true, false);
  EXPECT_EQ(fence.Admit(kItem).code(), absl::StatusCode::kAlreadyExists);
}

TEST(ItemFenceTest, OnlyTheLastRememberedEndsAreKept) {
  ItemFence fence(/*remembered=*/2);
  for (uint64_t e = 1; e <= 3; ++e) {
    EXPECT_EQ(fence.Cancel({"r", e}, absl::ZeroDuration()), CancelOutcome::kNotStarted);
  }
  EXPECT_TRUE(fence.Admit({"r", 1}).ok());  // forgotten
  EXPECT_FALSE(fence.Admit({"r", 3}).ok());
}

}  // namespace
}  // namespace pdserve::prefill
