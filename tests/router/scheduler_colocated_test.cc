// Colocated workers in the scheduler: one id that is both a prefill and a decode worker and
// prefills only what it decodes (router/scheduler.h).
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/scheduler.h"

namespace pdserve::router {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

SchedulerConfig Config() {
  return SchedulerConfig{.max_waiting = 16,
                         .max_batched_tokens = 100,
                         .max_batch_size = 3,
                         .max_inflight_batches = 2,
                         .block_size = 16};
}

PendingRequest Req(const std::string& id, int prompt_len, int max_tokens = 16) {
  return PendingRequest{.id = id, .prompt_len = prompt_len, .max_tokens = max_tokens};
}

TEST(SchedulerColocatedTest, PrefillAndDecodeOnTheSameWorkerWithNoPrefillBlocks) {
  Scheduler s(Config());
  s.AddColocatedWorker("c0", 100);
  ASSERT_TRUE(s.Enqueue(Req("a", 40)).ok());  // 3 prompt blocks, 4 with its output
  ScheduleStep step = s.Schedule();
  ASSERT_THAT(step.batches, SizeIs(1));
  EXPECT_EQ(step.batches[0].prefill_worker, "c0");
  ASSERT_THAT(step.batches[0].items, SizeIs(1));
  EXPECT_EQ(step.batches[0].items[0].decode_worker, "c0");
  EXPECT_EQ(step.batches[0].items[0].decode_blocks, 4u);
  // The kernels write the decode reservation: nothing reserved on the prefill side.
  EXPECT_EQ(step.batches[0].items[0].prefill_blocks, 0u);
  EXPECT_EQ(s.prefill_workers().at("c0").reserved_blocks, 0u);
  EXPECT_EQ(s.decode_workers().at("c0").reserved_blocks, 4u);
  s.PrefillDone(step.batches[0].batch_id);
  s.DecodeDone("a");
  EXPECT_EQ(s.decode_workers().at("c0").reserved_blocks, 0u);
  EXPECT_EQ(s.prefill_workers().at("c0").inflight_batches, 0);
}

// Zero-copy prefill workers (--zero-copy) write the decode reservation in place: their own
// pool bounds nothing, and nothing is reserved on it.
TEST(SchedulerColocatedTest, AnInPlacePrefillWorkerReservesNoBlocksOfItsOwn) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 2, /*in_place=*/true);  // a pool of 2 blocks
  s.AddDecodeWorker("d0", 100);
  ASSERT_TRUE(s.Enqueue(Req("a", 40)).ok());  // 3 prompt blocks: more than p0's pool
  ASSERT_TRUE(s.Enqueue(Req("b", 40)).ok());
  ScheduleStep step = s.Schedule();
  ASSERT_THAT(step.batches, SizeIs(1));
  EXPECT_EQ(step.batches[0].prefill_worker, "p0");
  ASSERT_THAT(step.batches[0].items, SizeIs(2));
  for (const Placement& p : step.batches[0].items) {
    EXPECT_EQ(p.prefill_blocks, 0u) << p.request_id;
    EXPECT_EQ(p.decode_worker, "d0") << p.request_id;
  }
  EXPECT_EQ(s.prefill_workers().at("p0").reserved_blocks, 0u);
  EXPECT_EQ(s.decode_workers().at("d0").reserved_blocks, 8u);
  // A copying prefill worker of the same pool could never take it.
  Scheduler copying(Config());
  copying.AddPrefillWorker("p0", 2);
  copying.AddDecodeWorker("d0", 100);
  EXPECT_EQ(copying.Enqueue(Req("a", 40)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerColocatedTest, EachRequestIsPrefilledWhereItDecodes) {
  Scheduler s(Config());
  s.AddColocatedWorker("c0", 100);
  s.AddColocatedWorker("c1", 100);
  for (const char* id : {"a", "b", "c", "d"}) ASSERT_TRUE(s.Enqueue(Req(id, 10)).ok());
  ScheduleStep step = s.Schedule();
  int placed = 0;
  for (const PrefillBatchPlan& batch : step.batches) {
    for (const Placement& p : batch.items) {
      EXPECT_EQ(p.decode_worker, batch.prefill_worker) << p.request_id;
      placed++;
    }
  }
  EXPECT_EQ(placed, 4);
  // Spread by free blocks, as split decode workers are.
  EXPECT_EQ(s.decode_workers().at("c0").running_requests, 2);
  EXPECT_EQ(s.decode_workers().at("c1").running_requests, 2);
}

TEST(SchedulerColocatedTest, ABusyWorkerDoesNotHoldTheQueueWhenAnotherCanTakeIt) {
  Scheduler s(Config());
  s.AddColocatedWorker("c0", 1000);  // the most free blocks: the first choice
  s.AddColocatedWorker("c1", 100);
  // c0's prefill side takes its 2 batches (3 items each, the batch size bound), then c1's.
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(s.Enqueue(Req("r" + std::to_string(i), 10)).ok());
  ScheduleStep step = s.Schedule();
  EXPECT_EQ(s.num_waiting(), 0u);
  EXPECT_EQ(s.prefill_workers().at("c0").inflight_batches, 2);
  EXPECT_GE(s.prefill_workers().at("c1").inflight_batches, 1);
  for (const PrefillBatchPlan& batch : step.batches) {
    for (const Placement& p : batch.items) EXPECT_EQ(p.decode_worker, batch.prefill_worker);
  }
}

TEST(SchedulerColocatedTest, WaitsWhenEveryColocatedWorkerHasItsBatchesInFlight) {
  Scheduler s(Config());
  s.AddColocatedWorker("c0", 1000);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(s.Enqueue(Req("r" + std::to_string(i), 10)).ok());
  ScheduleStep step = s.Schedule();
  ASSERT_THAT(step.batches, SizeIs(2));
  EXPECT_EQ(s.num_waiting(), 1u);  // FCFS: the seventh waits for a batch slot
  s.PrefillDone(step.batches[0].batch_id);
  ScheduleStep next = s.Schedule();
  ASSERT_THAT(next.batches, SizeIs(1));
  EXPECT_EQ(next.batches[0].prefill_worker, "c0");
  EXPECT_EQ(s.num_waiting(), 0u);
}

TEST(SchedulerColocatedTest, SplitAndColocatedWorkersNeverMix) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  s.AddColocatedWorker("c0", 100);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(s.Enqueue(Req("r" + std::to_string(i), 10)).ok());
  ScheduleStep step = s.Schedule();
  int split = 0, colocated = 0;
  for (const PrefillBatchPlan& batch : step.batches) {
    for (const Placement& p : batch.items) {
      if (batch.prefill_worker == "c0") {
        EXPECT_EQ(p.decode_worker, "c0");
        colocated++;
      } else {
        EXPECT_EQ(batch.prefill_worker, "p0");
        EXPECT_EQ(p.decode_worker, "d0");  // a split prefill never sends KV to a colocated pool
        EXPECT_GT(p.prefill_blocks, 0u);
        split++;
      }
    }
  }
  EXPECT_EQ(split + colocated, 6);
  EXPECT_GT(split, 0);
  EXPECT_GT(colocated, 0);
}

TEST(SchedulerColocatedTest, AcceptingAppliesToBothSidesAndRemoveForgetsBoth) {
  Scheduler s(Config());
  s.AddColocatedWorker("c0", 100);
  EXPECT_TRUE(s.SetAccepting("c0", false));
  EXPECT_FALSE(s.prefill_workers().at("c0").accepting);
  EXPECT_FALSE(s.decode_workers().at("c0").accepting);
  ASSERT_TRUE(s.Enqueue(Req("a", 10)).ok());
  EXPECT_THAT(s.Schedule().batches, SizeIs(0));
  EXPECT_TRUE(s.SetAccepting("c0", true));
  ScheduleStep step = s.Schedule();
  ASSERT_THAT(step.batches, SizeIs(1));
  EXPECT_THAT(s.RemoveWorker("c0"), ElementsAre("a", "a"));  // its batch and its placement
  EXPECT_TRUE(s.prefill_workers().empty());
  EXPECT_TRUE(s.decode_workers().empty());
  EXPECT_EQ(s.Enqueue(Req("b", 10)).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pdserve::router
