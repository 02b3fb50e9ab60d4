#include "router/scheduler.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve::router {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

SchedulerConfig Config() {
  return SchedulerConfig{.max_waiting = 8,
                         .max_batched_tokens = 100,
                         .max_batch_size = 3,
                         .max_inflight_batches = 2,
                         .block_size = 16};
}

PendingRequest Req(const std::string& id, int prompt_len, int max_tokens = 16) {
  return PendingRequest{.id = id, .prompt_len = prompt_len, .max_tokens = max_tokens};
}

std::vector<std::string> Ids(const PrefillBatchPlan& batch) {
  std::vector<std::string> ids;
  for (const Placement& p : batch.items) ids.push_back(p.request_id);
  return ids;
}

TEST(SchedulerTest, EnqueueIsUnavailableWithoutWorkers) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  EXPECT_EQ(s.Enqueue(Req("a", 10)).code(), absl::StatusCode::kUnavailable);
}

TEST(SchedulerTest, EnqueueRejectsWhenWaitingQueueIsFull) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(s.Enqueue(Req("r" + std::to_string(i), 10)).ok());
  absl::Status full = s.Enqueue(Req("r8", 10));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.message()), ::testing::HasSubstr("r8"));
  EXPECT_EQ(s.num_waiting(), 8u);
}

TEST(SchedulerTest, EnqueueRejectsRequestLargerThanEveryDecodePool) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 4);  // 64 tokens
  absl::Status st = s.Enqueue(Req("big", 40, 40));  // 80 tokens = 5 blocks
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("need 5 KV blocks"));
}

TEST(SchedulerTest, EnqueueRejectsPromptLargerThanEveryPrefillPool) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 2);
  s.AddDecodeWorker("d0", 100);
  EXPECT_EQ(s.Enqueue(Req("big", 33, 1)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerTest, EnqueueRejectsDuplicateId) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  ASSERT_TRUE(s.Enqueue(Req("a", 10)).ok());
  EXPECT_EQ(s.Enqueue(Req("a", 10)).code(), absl::StatusCode::kAlreadyExists);
}

TEST(SchedulerTest, BatchesWithinTokenBudget) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  ASSERT_TRUE(s.Enqueue(Req("a", 40)).ok());
  ASSERT_TRUE(s.Enqueue(Req("b", 50)).ok());
  ASSERT_TRUE(s.Enqueue(Req("c", 20)).ok());  // 110 > 100: next batch
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 2u);
  EXPECT_THAT(Ids(step.batches[0]), ElementsAre("a", "b"));
  EXPECT_EQ(step.batches[0].tokens, 90);
  EXPECT_THAT(Ids(step.batches[1]), ElementsAre("c"));
}

TEST(SchedulerTest, BatchesAtMostMaxBatchSize) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  for (const char* id : {"a", "b", "c", "d"}) ASSERT_TRUE(s.Enqueue(Req(id, 5)).ok());
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 2u);
  EXPECT_THAT(Ids(step.batches[0]), ElementsAre("a", "b", "c"));
  EXPECT_THAT(Ids(step.batches[1]), ElementsAre("d"));
}

TEST(SchedulerTest, PromptLongerThanTokenBudgetFormsBatchAlone) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  ASSERT_TRUE(s.Enqueue(Req("small", 10)).ok());
  ASSERT_TRUE(s.Enqueue(Req("long", 300)).ok());
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 2u);
  EXPECT_THAT(Ids(step.batches[1]), ElementsAre("long"));
  EXPECT_EQ(step.batches[1].items[0].prefill_blocks, 19u);
}

TEST(SchedulerTest, NewBatchGoesToLeastLoadedPrefillWorker) {
  SchedulerConfig config = Config();
  config.max_batch_size = 1;
  Scheduler s(config);
  s.AddPrefillWorker("p0", 100);
  s.AddPrefillWorker("p1", 100);
  s.AddDecodeWorker("d0", 100);
  ASSERT_TRUE(s.Enqueue(Req("a", 60)).ok());
  ASSERT_TRUE(s.Enqueue(Req("b", 10)).ok());
  ASSERT_TRUE(s.Enqueue(Req("c", 10)).ok());
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 3u);
  EXPECT_EQ(step.batches[0].prefill_worker, "p0");
  EXPECT_EQ(step.batches[1].prefill_worker, "p1");
  EXPECT_EQ(step.batches[2].prefill_worker, "p1");  // 10 in flight on p1 < 60 on p0
}

// The router nudges the worker HeadPrefillWorker names before it schedules: it must be the one
// Schedule() then gives the batch, and asking must change nothing.
TEST(SchedulerTest, HeadPrefillWorkerIsTheOneScheduleThenPicks) {
  SchedulerConfig config = Config();
  config.max_batch_size = 1;
  Scheduler s(config);
  s.AddPrefillWorker("p0", 100);
  s.AddPrefillWorker("p1", 100);
  s.AddDecodeWorker("d0", 100);
  EXPECT_EQ(s.HeadPrefillWorker(), std::nullopt);  // nothing waiting
  ASSERT_TRUE(s.Enqueue(Req("a", 60)).ok());
  EXPECT_EQ(s.HeadPrefillWorker(), "p0");
  ASSERT_EQ(s.Schedule().batches.at(0).prefill_worker, "p0");
  ASSERT_TRUE(s.Enqueue(Req("b", 10)).ok());
  EXPECT_EQ(s.HeadPrefillWorker(), "p1");  // p0 has 60 tokens in flight
  EXPECT_EQ(s.HeadPrefillWorker(), "p1");  // asking twice changes nothing
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 1u);
  EXPECT_EQ(step.batches[0].prefill_worker, "p1");
  // A colocated worker prefills its own requests.
  Scheduler c(config);
  c.AddColocatedWorker("c0", 100);
  ASSERT_TRUE(c.Enqueue(Req("x", 10)).ok());
  EXPECT_EQ(c.HeadPrefillWorker(), "c0");
  // The decode worker has no room now: Schedule() would place nothing, so no worker is named.
  Scheduler full(config);
  full.AddPrefillWorker("p0", 100);
  full.AddDecodeWorker("d0", 6);
  ASSERT_TRUE(full.Enqueue(Req("y", 60)).ok());  // 76 tokens: 5 of d0's 6 blocks
  ASSERT_EQ(full.Schedule().batches.size(), 1u);
  ASSERT_TRUE(full.Enqueue(Req("z", 60)).ok());  // fits d0, not its 1 free block
  EXPECT_EQ(full.HeadPrefillWorker(), std::nullopt);
  EXPECT_TRUE(full.Schedule().batches.empty());
}

TEST(SchedulerTest, PrefillWorkerTakesAtMostMaxInflightBatches) {
  SchedulerConfig config = Config();
  config.max_batch_size = 1;
  Scheduler s(config);
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(s.Enqueue(Req(id, 5)).ok());
  ScheduleStep step = s.Schedule();
  EXPECT_EQ(step.batches.size(), 2u);
  EXPECT_EQ(s.num_waiting(), 1u);
  s.PrefillDone(step.batches[0].batch_id);
  ScheduleStep next = s.Schedule();
  ASSERT_EQ(next.batches.size(), 1u);
  EXPECT_THAT(Ids(next.batches[0]), ElementsAre("c"));
}

TEST(SchedulerTest, ReservesPromptPlusOutputBlocksOnDecodeWorker) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  ASSERT_TRUE(s.Enqueue(Req("a", 20, 13)).ok());  // 33 tokens = 3 blocks
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 1u);
  EXPECT_EQ(step.batches[0].items[0].decode_blocks, 3u);
  EXPECT_EQ(step.batches[0].items[0].prefill_blocks, 2u);
  EXPECT_EQ(s.decode_workers().at("d0").reserved_blocks, 3u);
  s.DecodeDone("a");
  EXPECT_EQ(s.decode_workers().at("d0").reserved_blocks, 0u);
}

TEST(SchedulerTest, PlacesOnDecodeWorkerWithMostFreeBlocks) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 10);
  s.AddDecodeWorker("d1", 20);
  ASSERT_TRUE(s.Enqueue(Req("a", 16, 16)).ok());  // 2 blocks
  ASSERT_TRUE(s.Enqueue(Req("b", 16, 16)).ok());
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 1u);
  EXPECT_EQ(step.batches[0].items[0].decode_worker, "d1");
  EXPECT_EQ(step.batches[0].items[1].decode_worker, "d1");  // 18 free still > 10
}

TEST(SchedulerTest, RequestWaitsUntilDecodeBlocksAreFreed) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 4);
  ASSERT_TRUE(s.Enqueue(Req("a", 32, 32)).ok());  // 4 blocks: the whole pool
  ASSERT_TRUE(s.Enqueue(Req("b", 16, 16)).ok());
  ScheduleStep first = s.Schedule();
  ASSERT_EQ(first.batches.size(), 1u);
  EXPECT_THAT(Ids(first.batches[0]), ElementsAre("a"));
  EXPECT_EQ(s.num_waiting(), 1u);
  s.PrefillDone(first.batches[0].batch_id);
  EXPECT_THAT(s.Schedule().batches, IsEmpty());
  s.DecodeDone("a");
  ScheduleStep second = s.Schedule();
  ASSERT_EQ(second.batches.size(), 1u);
  EXPECT_THAT(Ids(second.batches[0]), ElementsAre("b"));
}

TEST(SchedulerTest, WaitingHeadBlocksSmallerRequestsBehindIt) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 4);
  ASSERT_TRUE(s.Enqueue(Req("a", 16, 16)).ok());  // 2 blocks
  ASSERT_TRUE(s.Enqueue(Req("big", 32, 32)).ok());  // 4 blocks: must wait for a
  ASSERT_TRUE(s.Enqueue(Req("small", 8, 8)).ok());  // would fit, but comes after big
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 1u);
  EXPECT_THAT(Ids(step.batches[0]), ElementsAre("a"));
  EXPECT_EQ(s.num_waiting(), 2u);
}

TEST(SchedulerTest, CancelWaitingRemovesRequest) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  ASSERT_TRUE(s.Enqueue(Req("a", 16)).ok());
  EXPECT_TRUE(s.CancelWaiting("a"));
  EXPECT_FALSE(s.CancelWaiting("a"));
  EXPECT_THAT(s.Schedule().batches, IsEmpty());
}

TEST(SchedulerTest, RemoveDecodeWorkerReturnsItsPlacedRequests) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 2);
  s.AddDecodeWorker("d1", 2);
  ASSERT_TRUE(s.Enqueue(Req("a", 16, 16)).ok());
  ASSERT_TRUE(s.Enqueue(Req("b", 16, 16)).ok());
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 1u);
  const std::string on_d0 = step.batches[0].items[0].decode_worker == "d0" ? "a" : "b";
  EXPECT_THAT(s.RemoveWorker("d0"), ElementsAre(on_d0));
  EXPECT_EQ(s.decode_workers().size(), 1u);
}

TEST(SchedulerTest, RemovePrefillWorkerReturnsItsInflightRequests) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  ASSERT_TRUE(s.Enqueue(Req("a", 16)).ok());
  ASSERT_TRUE(s.Enqueue(Req("b", 16)).ok());
  ASSERT_EQ(s.Schedule().batches.size(), 1u);
  EXPECT_THAT(s.RemoveWorker("p0"), UnorderedElementsAre("a", "b"));
}

TEST(SchedulerTest, ReaddedWorkerIsNotChargedForOrphanedBatches) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  ASSERT_TRUE(s.Enqueue(Req("a", 16)).ok());
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 1u);
  s.RemoveWorker("p0");
  s.RemoveWorker("d0");
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  s.PrefillDone(step.batches[0].batch_id);
  s.DecodeDone("a");
  EXPECT_EQ(s.prefill_workers().at("p0").reserved_blocks, 0u);
  EXPECT_EQ(s.prefill_workers().at("p0").inflight_batches, 0);
  EXPECT_EQ(s.decode_workers().at("d0").reserved_blocks, 0u);
  EXPECT_EQ(s.num_placed(), 0u);
}

TEST(SchedulerTest, WaitingRequestThatNoLongerFitsIsRejectedWhenItsWorkerLeaves) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("small", 2);
  s.AddDecodeWorker("large", 8);
  ASSERT_TRUE(s.Enqueue(Req("hog", 64, 64)).ok());  // 8 blocks: all of "large"
  ASSERT_TRUE(s.Enqueue(Req("wide", 64, 32)).ok());  // 6 blocks: only "large" fits
  ASSERT_EQ(s.Schedule().batches.size(), 1u);
  s.RemoveWorker("large");
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.rejected.size(), 1u);
  EXPECT_EQ(step.rejected[0].request_id, "wide");
  EXPECT_EQ(step.rejected[0].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.num_waiting(), 0u);
}

TEST(SchedulerTest, WorkerThatDoesNotAcceptIsSkippedThoughItHasTheMostFreeBlocks) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 1000);  // emptiest: would win every placement
  s.AddDecodeWorker("d1", 100);
  EXPECT_TRUE(s.SetAccepting("d0", false));
  EXPECT_FALSE(s.SetAccepting("d0", false));  // no change
  ASSERT_TRUE(s.Enqueue(Req("a", 10)).ok());
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 1u);
  EXPECT_EQ(step.batches[0].items[0].decode_worker, "d1");
  EXPECT_EQ(s.PlacedOn("d1"), 1);
  EXPECT_EQ(s.PlacedOn("p0"), 1);
  EXPECT_EQ(s.PlacedOn("d0"), 0);
}

TEST(SchedulerTest, WorkerWithABudgetOfOneGetsExactlyOneRequestPerBudget) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 1000);  // half-open: its one trial
  s.AddDecodeWorker("d1", 100);
  EXPECT_TRUE(s.SetAccepting("d0", true, 1));
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(s.Enqueue(Req(id, 10)).ok());
  ScheduleStep step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 1u);
  ASSERT_EQ(step.batches[0].items.size(), 3u);
  EXPECT_EQ(step.batches[0].items[0].decode_worker, "d0");
  EXPECT_EQ(step.batches[0].items[1].decode_worker, "d1");
  EXPECT_EQ(step.batches[0].items[2].decode_worker, "d1");
  EXPECT_EQ(s.PlacedOn("d0"), 1);
}

TEST(SchedulerTest, RequestsWaitWhileNoWorkerAcceptsAndArePlacedWhenOneDoesAgain) {
  Scheduler s(Config());
  s.AddPrefillWorker("p0", 100);
  s.AddDecodeWorker("d0", 100);
  s.SetAccepting("p0", false);
  ASSERT_TRUE(s.Enqueue(Req("a", 10)).ok());
  ScheduleStep step = s.Schedule();
  EXPECT_THAT(step.batches, IsEmpty());
  EXPECT_THAT(step.rejected, IsEmpty());  // it still fits a worker that will come back
  EXPECT_EQ(s.num_waiting(), 1u);
  EXPECT_TRUE(s.SetAccepting("p0", true));
  step = s.Schedule();
  ASSERT_EQ(step.batches.size(), 1u);
  EXPECT_EQ(step.batches[0].prefill_worker, "p0");
  s.PrefillDone(step.batches[0].batch_id);
  EXPECT_EQ(s.PlacedOn("p0"), 0);
  s.DecodeDone("a");
  EXPECT_EQ(s.PlacedOn("d0"), 0);
}

}  // namespace
}  // namespace pdserve::router
