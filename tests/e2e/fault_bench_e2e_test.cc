// `pdserve bench faults` end to end: one trial of every fault kind against a real supervised
// cluster under verified load, and the benchmark's own figures asserted on. Plus the request
// attribution the figures rest on, on hand-made records.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "bench/fault_bench.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve::bench {
namespace {

using ::testing::ElementsAre;

TEST(FaultAttributionTest, WorkersNamedFindsWholeWorkerIds) {
  EXPECT_THAT(WorkersNamed("request r1: prefill worker prefill-0 failed: peer decode-12 gone"),
              ElementsAre("prefill-0", "decode-12"));
  EXPECT_THAT(WorkersNamed("request r1 waited in the queue for 5s"), ElementsAre());
}

TEST(FaultAttributionTest, AFailureCountsAsTheFaultsOnlyWhenItNamesAWorkerUnderAFault) {
  TransferRun run;
  TrialResult t;
  t.victim = "decode-1";
  t.start_ns = 100;
  t.fault_ns = 110;
  t.fault_end_ns = 110;
  t.served_again_ns = 200;
  t.end_ns = 200;
  run.trials = {t};
  auto record = [](int64_t start, int64_t end, Verdict v, const std::string& message) {
    RequestRecord r;
    r.start_ns = start;
    r.end_ns = end;
    r.verdict = v;
    r.message = message;
    return r;
  };
  run.requests = {
      record(10, 50, Verdict::kCleanError, "decode worker decode-0 failed"),  // warm-up
      record(105, 120, Verdict::kCleanError, "decode worker decode-1 failed"),
      record(105, 130, Verdict::kCleanError, "decode worker decode-0 failed"),  // elsewhere
      record(250, 260, Verdict::kCleanError, "decode worker decode-1 failed"),  // after it
      record(105, 140, Verdict::kVerified, ""),
      record(105, 150, Verdict::kWrongTokens, ""),
  };
  AttributeRequests(run);
  const TrialResult& r = run.trials[0];
  EXPECT_EQ(r.clean_errors, 3);
  EXPECT_EQ(r.failed_elsewhere, 2);
  EXPECT_EQ(r.verified, 1);
  EXPECT_EQ(r.wrong, 1);
}

TEST(FaultBenchTest, OneTrialOfEachFaultKeepsEveryTarget) {
  char dir[] = "/tmp/pdserve-fault-bench-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  FaultBenchOptions o;
  o.binary = PDSERVE_BINARY;
  o.trials = kNumFaultKinds;  // one of each
  o.check_every = kNumFaultKinds;
  o.out_dir = dir;
  o.command = "fault_bench_e2e_test";
  absl::StatusOr<FaultBenchResult> result = RunFaultBench(o);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(WriteFaultReport(*result).ok());
  const FaultTotals t = Totals(*result);
  EXPECT_EQ(t.trials, kNumFaultKinds);
  EXPECT_GT(t.verified, 0);
  EXPECT_EQ(t.wrong, 0);
  EXPECT_EQ(t.never_ended, 0);
  EXPECT_EQ(t.failed_elsewhere, 0);
  EXPECT_EQ(t.victims_not_ready, 0);
  EXPECT_EQ(t.recovered, kNumFaultKinds) << "every victim (or its restart) served again";
  EXPECT_EQ(t.checkpoints, 2);
  EXPECT_EQ(t.unsettled_checkpoints, 0);
  EXPECT_EQ(t.leaked_blocks, 0);
  EXPECT_EQ(t.leftover_segments, 0);
  // Five of the eight kinds end the process; the supervisor restarted each.
  int restarts = 0;
  for (const auto& [name, n] : result->runs[0].restarts) restarts += n;
  EXPECT_EQ(restarts, 5) << "kill-prefill, kill-decode, term-prefill, term-decode, peer-removed";
  for (const char* file : {"report.md", "results.json", "trials.csv"}) {
    EXPECT_TRUE(std::filesystem::exists(std::string(dir) + "/" + file)) << file;
  }
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pdserve::bench
