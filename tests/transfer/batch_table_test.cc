#include "transfer/batch_table.h"

#include <thread>

#include "gtest/gtest.h"

namespace pdserve::transfer {
namespace {

TEST(BatchTableTest, WaitReturnsTheStatusTheBatchCompletedWith) {
  BatchTable table(4);
  TransferId id = *table.Begin(100, 1);
  table.Complete(id, absl::UnavailableError("peer gone"));
  absl::Status s = table.Wait(id, absl::Seconds(1));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "peer gone");
}

TEST(BatchTableTest, CopyWaitIsKeptInTheStatsAndFrozenOnceComplete) {
  BatchTable table(4);
  TransferId id = *table.Begin(100, 1);
  table.SetCopyWait(id, 1234);
  table.Complete(id, absl::OkStatus());
  table.SetCopyWait(id, 999);  // too late: ignored
  ASSERT_TRUE(table.Wait(id, absl::Seconds(1)).ok());
  EXPECT_EQ(table.Stats(id)->copy_wait_ns, 1234);
  table.SetCopyWait(id, 5);  // reaped: ignored, the kept stats do not change
  EXPECT_EQ(table.Stats(id)->copy_wait_ns, 1234);
}

TEST(BatchTableTest, FirstCompletionWins) {
  BatchTable table(4);
  TransferId id = *table.Begin(100, 1);
  table.Complete(id, absl::OkStatus());
  table.Complete(id, absl::CancelledError("late cancel"));
  EXPECT_TRUE(table.Wait(id, absl::Seconds(1)).ok());
}

TEST(BatchTableTest, PollIsFalseWhileInFlightAndTrueOnceDone) {
  BatchTable table(4);
  TransferId id = *table.Begin(100, 1);
  EXPECT_FALSE(*table.Poll(id));
  table.Complete(id, absl::OkStatus());
  EXPECT_TRUE(*table.Poll(id));
}

TEST(BatchTableTest, AReapedHandleIsNotFoundButKeepsItsStats) {
  BatchTable table(4);
  TransferId id = *table.Begin(4096, 3);
  table.Complete(id, absl::OkStatus());
  ASSERT_TRUE(table.Wait(id, absl::Seconds(1)).ok());
  EXPECT_EQ(table.Poll(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(table.Wait(id, absl::Seconds(1)).code(), absl::StatusCode::kNotFound);
  absl::StatusOr<TransferStats> stats = table.Stats(id);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->bytes, 4096u);
  EXPECT_EQ(stats->operations, 3u);
  EXPECT_GE(stats->complete_ns, stats->submit_ns);
}

TEST(BatchTableTest, AnIdNeverIssuedIsNotFound) {
  BatchTable table(4);
  EXPECT_EQ(table.Poll(7).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(table.Stats(7).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(table.Stats(0).status().code(), absl::StatusCode::kNotFound);
}

TEST(BatchTableTest, BeginBeyondTheInFlightLimitIsResourceExhausted) {
  BatchTable table(2);
  TransferId a = *table.Begin(1, 1);
  ASSERT_TRUE(table.Begin(1, 1).ok());
  EXPECT_EQ(table.Begin(1, 1).status().code(), absl::StatusCode::kResourceExhausted);
  table.Complete(a, absl::OkStatus());
  EXPECT_TRUE(table.Begin(1, 1).ok());
}

TEST(BatchTableTest, AFinishedBatchIsReadyAtOnceAndTakesNoInFlightSlot) {
  BatchTable table(1);
  TransferId done = table.AddFinished(512, 2, /*submit_ns=*/1, absl::OkStatus());
  EXPECT_TRUE(table.Begin(1, 1).ok());  // the one slot is still free
  EXPECT_TRUE(*table.Poll(done));
  EXPECT_EQ(table.Stats(done)->bytes, 512u);
  EXPECT_EQ(table.Stats(done)->submit_ns, 1);
}

TEST(BatchTableTest, ReapingOutOfOrderKeepsTheOtherHandles) {
  BatchTable table(8);
  TransferId a = *table.Begin(1, 1), b = *table.Begin(2, 1), c = *table.Begin(3, 1);
  for (TransferId id : {a, b, c}) table.Complete(id, absl::OkStatus());
  ASSERT_TRUE(table.Wait(b, absl::Seconds(1)).ok());
  ASSERT_TRUE(table.Wait(a, absl::Seconds(1)).ok());
  EXPECT_TRUE(*table.Poll(c));
  EXPECT_EQ(table.Stats(a)->bytes, 1u);
  EXPECT_EQ(table.Stats(b)->bytes, 2u);
  EXPECT_EQ(table.Stats(c)->bytes, 3u);
}

TEST(BatchTableTest, CountersAddUpCompletedAndFailedBatches) {
  BatchTable table(8);
  TransferId a = *table.Begin(100, 2), b = *table.Begin(50, 1);
  table.Complete(a, absl::OkStatus());
  table.Complete(b, absl::InternalError("x"));
  table.AddFinished(10, 1, 0, absl::OkStatus());
  TransportCounters c;
  table.FillCounters(c);
  EXPECT_EQ(c.batches_submitted, 3u);
  EXPECT_EQ(c.batches_completed, 2u);
  EXPECT_EQ(c.batches_failed, 1u);
  EXPECT_EQ(c.bytes_sent, 110u);
  EXPECT_EQ(c.operations_issued, 4u);
}

TEST(BatchTableTest, WaitOnABatchStillInFlightIsDeadlineExceeded) {
  BatchTable table(4);
  TransferId id = *table.Begin(1, 1);
  EXPECT_EQ(table.Wait(id, absl::ZeroDuration()).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(*table.Poll(id));  // still there
}

TEST(BatchTableTest, CompletionOnAnotherThreadWakesAWaiter) {
  BatchTable table(4);
  TransferId id = *table.Begin(1, 1);
  std::thread completer([&] { table.Complete(id, absl::DataLossError("torn")); });
  EXPECT_EQ(table.Wait(id, absl::InfiniteDuration()).code(), absl::StatusCode::kDataLoss);
  completer.join();
}

}  // namespace
}  // namespace pdserve::transfer
