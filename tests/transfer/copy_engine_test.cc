// The local backend's copy engine: which thread copies a job, and that every byte lands.
#include "transfer/local/copy_engine.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace pdserve::transfer::local {
namespace {

struct Buffers {
  explicit Buffers(size_t bytes) : src(bytes), dst(bytes, std::byte{0}) {
    for (size_t i = 0; i < bytes; ++i) src[i] = static_cast<std::byte>(i * 7 + 3);
  }
  std::vector<std::byte> src, dst;
};

// Two scattered operations of `bytes / 2` each, swapping the halves.
std::shared_ptr<CopyJob> SwapHalves(Buffers& b) {
  auto job = std::make_shared<CopyJob>();
  const uint64_t half = b.src.size() / 2;
  job->src_base = b.src.data();
  job->dst_base = b.dst.data();
  job->ops = {{0, half, half}, {half, 0, half}};
  return job;
}

bool HalvesSwapped(const Buffers& b) {
  const size_t half = b.src.size() / 2;
  return std::memcmp(b.dst.data(), b.src.data() + half, half) == 0 &&
         std::memcmp(b.dst.data() + half, b.src.data(), half) == 0;
}

TEST(CopyEngineTest, JobUpToInlineBytesIsCopiedOnTheCallersThreadBeforeRunReturns) {
  CopyEngine engine(2);
  Buffers b(CopyEngine::kInlineBytes);
  auto job = SwapHalves(b);
  std::thread::id done_on;
  bool done_cancelled = true;
  job->done = [&](bool cancelled) {
    done_on = std::this_thread::get_id();
    done_cancelled = cancelled;
  };
  EXPECT_TRUE(engine.Run(job));
  EXPECT_EQ(done_on, std::this_thread::get_id());
  EXPECT_FALSE(done_cancelled);
  EXPECT_TRUE(HalvesSwapped(b));
}

// Keeps both copy threads of a 2-thread engine busy with 64 MiB each (milliseconds), so
// that shares queued behind it are provably not copied yet when Run returns.
std::shared_ptr<CopyJob> OccupyBothThreads(CopyEngine& engine, Buffers& b) {
  auto job = SwapHalves(b);
  EXPECT_EQ(engine.SharesFor(b.src.size()), 2);
  EXPECT_FALSE(engine.Run(job));
  return job;
}

TEST(CopyEngineTest, JobAboveTheCallerShareLimitIsLeftToTheCopyThreads) {
  Buffers busy(128 << 20), b(2 * CopyEngine::kCallerShareMaxBytes);
  CopyEngine engine(2);
  OccupyBothThreads(engine, busy);
  auto job = SwapHalves(b);
  job->cancelled = std::make_shared<std::atomic<bool>>(false);
  absl::Notification finished;
  bool done_cancelled = false;
  job->done = [&](bool cancelled) {
    done_cancelled = cancelled;
    finished.Notify();
  };
  EXPECT_FALSE(engine.Run(job));
  // Its shares wait behind the busy ones; cancelled now, none of them copies a byte. Had the
  // caller copied a share inside Run, half of the destination would be written already.
  job->cancelled->store(true);
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(done_cancelled);
  EXPECT_EQ(std::count(b.dst.begin(), b.dst.end(), std::byte{0}), static_cast<long>(b.dst.size()));
}

TEST(CopyEngineTest, MidSizeJobHasItsFirstShareCopiedByTheCallerBeforeRunReturns) {
  Buffers busy(128 << 20), b(4 * CopyEngine::kMinShareBytes);  // two shares, one per operation
  CopyEngine engine(2);
  OccupyBothThreads(engine, busy);
  auto job = SwapHalves(b);
  absl::Notification finished;
  bool done_cancelled = true;
  job->done = [&](bool cancelled) {
    done_cancelled = cancelled;
    finished.Notify();
  };
  EXPECT_FALSE(engine.Run(job));
  const size_t half = b.src.size() / 2;
  // Share 0 is the first operation: source's first half into the destination's second half.
  // Both copy threads are still busy, so only the caller can have copied it.
  EXPECT_EQ(std::memcmp(b.dst.data() + half, b.src.data(), half), 0);
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_FALSE(done_cancelled);
  EXPECT_TRUE(HalvesSwapped(b));
}

TEST(CopyEngineTest, SharesForCountsInlineOneThreadPer512KiBAndAtMostTheThreads) {
  CopyEngine engine(2);
  EXPECT_EQ(engine.SharesFor(16 * 1024), 0);
  EXPECT_EQ(engine.SharesFor(CopyEngine::kInlineBytes), 0);
  EXPECT_EQ(engine.SharesFor(CopyEngine::kInlineBytes + 1), 1);
  EXPECT_EQ(engine.SharesFor(2 * CopyEngine::kMinShareBytes), 2);
  EXPECT_EQ(engine.SharesFor(64 * CopyEngine::kMinShareBytes), 2);
}

// A thread that another job keeps busy leaves a large job's chunks to the free thread, which
// copies all of them: with a fixed half per thread the job would wait for the busy one.
TEST(CopyEngineTest, LargeJobIsFinishedByTheFreeThreadWhileTheOtherIsBusy) {
  CopyEngine engine(2);
  Buffers one(CopyEngine::kMinShareBytes);  // one share: goes to thread 0
  ASSERT_EQ(engine.SharesFor(one.src.size()), 1);
  auto blocker = SwapHalves(one);
  absl::Notification release, blocked;
  blocker->done = [&](bool) {
    blocked.Notify();
    release.WaitForNotification();  // holds thread 0 here
  };
  EXPECT_FALSE(engine.Run(blocker));
  ASSERT_TRUE(blocked.WaitForNotificationWithTimeout(absl::Seconds(30)));

  Buffers b(4 * CopyEngine::kCallerShareMaxBytes + 12345);
  auto job = SwapHalves(b);
  absl::Notification finished;
  bool done_cancelled = true;
  job->done = [&](bool cancelled) {
    done_cancelled = cancelled;
    finished.Notify();
  };
  EXPECT_FALSE(engine.Run(job));
  const bool finished_while_blocked = finished.WaitForNotificationWithTimeout(absl::Seconds(30));
  release.Notify();
  ASSERT_TRUE(finished_while_blocked);
  EXPECT_FALSE(done_cancelled);
  EXPECT_TRUE(HalvesSwapped(b));
}

TEST(CopyEngineTest, CancelledInlineJobCopiesNothingAndReportsCancelled) {
  CopyEngine engine(1);
  Buffers b(64 * 1024);
  auto job = SwapHalves(b);
  job->cancelled = std::make_shared<std::atomic<bool>>(true);
  bool done_cancelled = false;
  job->done = [&](bool cancelled) { done_cancelled = cancelled; };
  EXPECT_TRUE(engine.Run(job));
  EXPECT_TRUE(done_cancelled);
  EXPECT_EQ(std::count(b.dst.begin(), b.dst.end(), std::byte{0}), static_cast<long>(b.dst.size()));
}

}  // namespace
}  // namespace pdserve::transfer::local
