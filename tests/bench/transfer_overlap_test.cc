#include "bench/transfer_overlap.h"

#include "bench/request_transfer_baseline.h"

#include "gtest/gtest.h"

namespace pdserve::bench {
namespace {

TransferInterval At(double begin, double end, const char* prefill, const char* decode) {
  return {.begin_ms = begin, .end_ms = end, .prefill_worker = prefill, .decode_worker = decode};
}

TEST(TransferOverlapTest, AloneOnlyWhenNoTransferThroughTheSameWorkersOverlaps) {
  const std::vector<TransferInterval> v = {
      At(0, 10, "p0", "d0"),   // overlaps the next one: same workers
      At(5, 15, "p0", "d0"),   //
      At(20, 30, "p0", "d0"),  // overlaps only a transfer between other workers
      At(22, 28, "p1", "d1"),  //
      At(30, 40, "p0", "d0"),  // touches the one before it at 30 ms: no overlap
      At(50, 60, "p1", "d0"),  // shares the decode worker with the next one
      At(55, 56, "p0", "d0"),  //
      At(70, 80, "p0", "d1"),  // shares the prefill worker with the next one
      At(79, 90, "p0", "d0"),
  };
  EXPECT_EQ(RanAlone(v),
            (std::vector<bool>{false, false, true, true, true, false, false, false, false}));
}

TEST(TransferOverlapTest, ATransferDuringAnotherRequestsPrefillOnItsPrefillWorkerIsNotAlone) {
  auto with_prefill = [](TransferInterval t, double begin, double end) {
    t.prefill_begin_ms = begin;
    t.prefill_end_ms = end;
    return t;
  };
  const std::vector<TransferInterval> v = {
      with_prefill(At(10, 14, "p0", "d0"), 0, 10),   // its transfer meets the next prefill
      with_prefill(At(25, 29, "p0", "d0"), 12, 25),  // its own transfer is clear
      with_prefill(At(40, 44, "p1", "d1"), 30, 40),  // another prefill worker's prefill at 41
      with_prefill(At(60, 64, "p0", "d1"), 41, 60),
  };
  EXPECT_EQ(RanAlone(v), (std::vector<bool>{false, true, true, true}));
}

TEST(TransferOverlapTest, IntervalEndsWhenTheKvLandedAndLastsTheTransferTime) {
  // Streamed: 25 ms of transfer of which the last 10 were not hidden under the prefill.
  const nlohmann::json timeline = {
      {"transfer_ms", 25.0},
      {"prefill_worker", "prefill-0"},
      {"decode_worker", "decode-1"},
      {"ttft_stages_ms",
       {{"queue", 1.0}, {"allocate", 0.5}, {"dispatch", 0.5}, {"prefill", 40.0}, {"kv_transfer", 10.0}}}};
  TransferInterval t;
  ASSERT_TRUE(IntervalOf(1.0, timeline, &t));
  EXPECT_DOUBLE_EQ(t.end_ms, 1052.0);
  EXPECT_DOUBLE_EQ(t.begin_ms, 1027.0);
  EXPECT_EQ(t.prefill_worker, "prefill-0");
  EXPECT_EQ(t.decode_worker, "decode-1");
  EXPECT_DOUBLE_EQ(t.prefill_begin_ms, 1002.0);
  EXPECT_DOUBLE_EQ(t.prefill_end_ms, 1042.0);
}

TEST(TransferOverlapTest, CopyWaitIsReadAndStarvedMeansAQuarterMoreThanTheBaseline) {
  nlohmann::json timeline = {
      {"transfer_ms", 8.0},
      {"transfer_copy_wait_ms", 2.5},
      {"ttft_stages_ms",
       {{"queue", 0.0}, {"allocate", 0.0}, {"dispatch", 0.0}, {"prefill", 4.0}, {"kv_transfer", 8.0}}}};
  TransferInterval t;
  ASSERT_TRUE(IntervalOf(0.0, timeline, &t));
  EXPECT_DOUBLE_EQ(t.copy_wait_ms, 2.5);
  EXPECT_DOUBLE_EQ(WaitShare(t, 10.0), 0.25);
  EXPECT_DOUBLE_EQ(WaitShare(t, 0.0), 0.0);
  EXPECT_TRUE(Starved(0.3125, 0.0));    // 2.5 of 8 ms, a microbenchmark that never waited
  EXPECT_FALSE(Starved(0.3125, 0.1));   // 0.31 - 0.1 is not over a quarter
  EXPECT_TRUE(Starved(0.6, 0.3));       // the 2-core VM: both sides wait, one much more
  EXPECT_FALSE(Starved(0.25, 0.0));     // exactly a quarter: not over it
  timeline.erase("transfer_copy_wait_ms");  // an older result, or a backend that does not say
  ASSERT_TRUE(IntervalOf(0.0, timeline, &t));
  EXPECT_DOUBLE_EQ(t.copy_wait_ms, 0.0);
  EXPECT_FALSE(Starved(WaitShare(t, 8.0), 0.0));
}

TEST(TransferOverlapTest, ATimelineWithoutItsStagesCannotBePlaced) {
  nlohmann::json timeline = {{"transfer_ms", 25.0}};
  TransferInterval t;
  EXPECT_FALSE(IntervalOf(1.0, timeline, &t));
  timeline["ttft_stages_ms"] = {{"queue", 1.0}, {"prefill", 40.0}};  // no kv_transfer
  EXPECT_FALSE(IntervalOf(1.0, timeline, &t));
  timeline = {{"ttft_stages_ms",
               {{"queue", 1.0}, {"allocate", 0.5}, {"dispatch", 0.5}, {"prefill", 4.0},
                {"kv_transfer", 1.0}}}};  // no transfer_ms
  EXPECT_FALSE(IntervalOf(1.0, timeline, &t));
}

TEST(TransferBaselineTest, TwoRoundsPoolTheirColdTransfers) {
  RequestTransferBaseline a{.backend = "local", .input_len = 512, .transfers = 3, .mean_ms = 11,
                            .p50_ms = 13, .min_ms = 6, .warm_mean_ms = 10,
                            .cold_ms = {6, 13, 14}};
  const RequestTransferBaseline b{.backend = "local", .input_len = 512, .transfers = 5,
                                  .mean_ms = 4.6, .p50_ms = 4.5, .min_ms = 4, .warm_mean_ms = 2,
                                  .cold_ms = {4, 4.5, 4.5, 5, 5}};
  MergeBaseline(a, b);
  EXPECT_EQ(a.cold_ms, (std::vector<double>{4, 4.5, 4.5, 5, 5, 6, 13, 14}));
  EXPECT_EQ(a.transfers, 8);
  EXPECT_EQ(a.rounds, 2);
  EXPECT_DOUBLE_EQ(a.p50_ms, 5);  // the transient round no longer sets the median
  EXPECT_DOUBLE_EQ(a.min_ms, 4);
  EXPECT_DOUBLE_EQ(a.mean_ms, 56.0 / 8);
  EXPECT_DOUBLE_EQ(a.warm_mean_ms, (10.0 * 3 + 2.0 * 5) / 8);
}

}  // namespace
}  // namespace pdserve::bench
