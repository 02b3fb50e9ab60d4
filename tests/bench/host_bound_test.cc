#include "bench/host_bound.h"

#include "gtest/gtest.h"

namespace pdserve::bench {
namespace {

// A quiet 10 s cell on 2 CPUs: every process well under a core, engines on their model.
CellUsage QuietCell() {
  CellUsage u;
  u.measured = true;
  u.wall_s = 10;
  u.allowed_cpus = 2;
  u.host_busy_cpus = 0.6;
  u.processes = {{"router", 0.5}, {"prefill-0", 2.0}, {"decode-0", 3.0}, {"loadgen", 0.4}};
  u.engines = {{.worker = "prefill-0",
                .decode = false,
                .steps = 40,
                .overrun_steps = 1,
                .work_us = 100000,
                .modelled_us = 2000000,
                .mock_cpu_us = 90000},
               {.worker = "decode-0",
                .decode = true,
                .steps = 1000,
                .overrun_steps = 20,
                .work_us = 500000,
                .modelled_us = 7000000,
                .mock_cpu_us = 300000}};
  return u;
}

const SendLag kOnTime{0.3, 1.2};

TEST(HostBoundTest, QuietCellIsNotHostBound) {
  const HostBoundVerdict v = JudgeHostBound(QuietCell(), kOnTime);
  EXPECT_FALSE(v.host_bound);
  EXPECT_TRUE(v.reasons.empty());
  EXPECT_TRUE(v.notes.empty());
}

TEST(HostBoundTest, OneProcessAboveThresholdOfACoreFlagsIt) {
  CellUsage u = QuietCell();
  u.processes[2].cpu_s = 9.0;  // decode-0: 0.9 of a core
  const HostBoundVerdict v = JudgeHostBound(u, kOnTime);
  EXPECT_TRUE(v.host_bound);
  ASSERT_EQ(v.reasons.size(), 1u);
  EXPECT_EQ(v.reasons[0], "decode-0 used 0.90 of a core (> 0.85)");
}

TEST(HostBoundTest, ProcessesTogetherFillingTheCpusFlagIt) {
  CellUsage u = QuietCell();
  // Each under 0.85 of a core, together 0.8 + 0.8 + 0.2 = 1.8 > 0.85 x 2.
  u.processes = {{"prefill-0", 8.0}, {"decode-0", 8.0}, {"router", 2.0}};
  u.host_busy_cpus = 1.85;
  const HostBoundVerdict v = JudgeHostBound(u, kOnTime);
  EXPECT_TRUE(v.host_bound);
  ASSERT_EQ(v.reasons.size(), 1u);
  EXPECT_EQ(v.reasons[0], "cluster + loadgen used 1.80 of 2 CPUs (> 85%)");
}

TEST(HostBoundTest, OtherProcessesFillingTheHostFlagIt) {
  CellUsage u = QuietCell();
  u.host_busy_cpus = 1.98;  // ours 0.59: someone else's build
  const HostBoundVerdict v = JudgeHostBound(u, kOnTime);
  EXPECT_TRUE(v.host_bound);
  ASSERT_EQ(v.reasons.size(), 1u);
  EXPECT_EQ(v.reasons[0], "host CPUs 99% busy (1.39 of them by other processes)");
}

TEST(HostBoundTest, DecodeStepsOverrunningTheModelFlagIt) {
  CellUsage u = QuietCell();
  u.engines[1].overrun_steps = 60;
  u.engines[1].overrun_us = 420000;  // 6% of the 7 s modelled
  const HostBoundVerdict v = JudgeHostBound(u, kOnTime);
  EXPECT_TRUE(v.host_bound);
  ASSERT_EQ(v.reasons.size(), 1u);
  EXPECT_EQ(v.reasons[0],
            "decode-0: overruns added 6.0% to its modelled time (+420.0 ms; 60 of 1000 decode "
            "steps overran)");
}

TEST(HostBoundTest, OverrunsAtTheThresholdAreNotFlagged) {
  CellUsage u = QuietCell();
  u.engines[0].overrun_us = 100000;  // exactly 5% of 2 s
  u.engines[1].overrun_us = 350000;  // exactly 5% of 7 s
  EXPECT_FALSE(JudgeHostBound(u, kOnTime).host_bound);
}

// Many steps a little late stretch the modelled time less than a few steps very late: the
// share of time, not of steps, decides.
TEST(HostBoundTest, ManySlightlyLateStepsAreNotHostBound) {
  CellUsage u = QuietCell();
  u.engines[0].overrun_steps = 10;   // a quarter of the batches...
  u.engines[0].overrun_us = 20000;   // ...late by 2 ms each: 1% of 2 s
  EXPECT_FALSE(JudgeHostBound(u, kOnTime).host_bound);
}

TEST(HostBoundTest, PrefillBatchesOverrunningFlagIt) {
  CellUsage u = QuietCell();
  u.engines[0].overrun_steps = 2;
  u.engines[0].overrun_us = 150000;  // 7.5% of 2 s
  const HostBoundVerdict v = JudgeHostBound(u, kOnTime);
  ASSERT_EQ(v.reasons.size(), 1u);
  EXPECT_EQ(v.reasons[0],
            "prefill-0: overruns added 7.5% to its modelled time (+150.0 ms; 2 of 40 prefill "
            "batches overran)");
}

TEST(HostBoundTest, LoadGeneratorBehindItsScheduleFlagsIt) {
  const HostBoundVerdict p99 = JudgeHostBound(QuietCell(), {6.0, 8.0});
  EXPECT_TRUE(p99.host_bound);
  ASSERT_EQ(p99.reasons.size(), 1u);
  EXPECT_EQ(p99.reasons[0], "loadgen p99 send lag 6.0 ms (> 5)");
  const HostBoundVerdict max = JudgeHostBound(QuietCell(), {1.0, 51.0});
  EXPECT_TRUE(max.host_bound);
  ASSERT_EQ(max.reasons.size(), 1u);
  EXPECT_EQ(max.reasons[0], "loadgen max send lag 51.0 ms (> 50)");
}

// At 4 req/s requests are 250 ms apart: 8 ms late leaves the offered load as asked, 30 ms late
// (over a tenth of the gap) does not.
TEST(HostBoundTest, SendLagLimitScalesWithTheInterArrivalGap) {
  EXPECT_FALSE(JudgeHostBound(QuietCell(), {8.0, 9.0, 250.0}).host_bound);
  const HostBoundVerdict late = JudgeHostBound(QuietCell(), {30.0, 31.0, 250.0});
  ASSERT_EQ(late.reasons.size(), 1u);
  EXPECT_EQ(late.reasons[0], "loadgen p99 send lag 30.0 ms (> 25)");
}

TEST(HostBoundTest, EngineCountersAtZeroAreNotReportedNotAPass) {
  CellUsage u = QuietCell();
  for (EngineDelta& e : u.engines) e = {.worker = e.worker, .decode = e.decode};
  const HostBoundVerdict v = JudgeHostBound(u, kOnTime);
  EXPECT_FALSE(v.host_bound);
  EXPECT_FALSE(v.unverified);  // no modelled compute: rule (b) does not apply
  ASSERT_EQ(v.notes.size(), 1u);
  EXPECT_EQ(v.notes[0], "engine counters not reported");
}

TEST(HostBoundTest, ModelledComputeWithoutEngineCountersIsUnverified) {
  CellUsage u = QuietCell();
  u.modelled = true;
  EXPECT_FALSE(JudgeHostBound(u, kOnTime).unverified);  // counters reported
  u.engines.clear();
  const HostBoundVerdict v = JudgeHostBound(u, kOnTime);
  EXPECT_FALSE(v.host_bound);
  EXPECT_TRUE(v.unverified);
  EXPECT_EQ(v.notes,
            (std::vector<std::string>{
                "engine counters not reported: overruns of the modelled time not checked"}));
}

TEST(HostBoundTest, UnsampledCellSaysSo) {
  const HostBoundVerdict v = JudgeHostBound(CellUsage{}, {-1, -1});
  EXPECT_FALSE(v.host_bound);
  EXPECT_TRUE(v.unverified);
  EXPECT_EQ(v.notes, (std::vector<std::string>{"CPU and engine counters not sampled",
                                               "send lag not reported"}));
}

TEST(HostBoundTest, UsageSurvivesTheReportInputsFile) {
  const CellUsage u = QuietCell();
  const CellUsage back = CellUsageFromJson(CellUsageToJson(u));
  EXPECT_EQ(back.wall_s, u.wall_s);
  EXPECT_EQ(back.modelled, u.modelled);
  EXPECT_EQ(back.host_busy_cpus, u.host_busy_cpus);
  ASSERT_EQ(back.processes.size(), 4u);
  EXPECT_EQ(back.processes[2].name, "decode-0");
  ASSERT_EQ(back.engines.size(), 2u);
  EXPECT_EQ(back.engines[1].steps, 1000u);
  EXPECT_TRUE(back.engines[1].decode);
}

}  // namespace
}  // namespace pdserve::bench
