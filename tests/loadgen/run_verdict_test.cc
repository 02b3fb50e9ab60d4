// The exit status of `pdserve loadgen` from a finished run's counts.
#include "loadgen/run_verdict.h"

#include "gtest/gtest.h"

namespace pdserve::loadgen {
namespace {

BenchmarkResult Counts(int completed, int failed, int verify_mismatches = 0) {
  BenchmarkResult r;
  r.metrics.completed = completed;
  r.metrics.failed = failed;
  if (failed > 0) r.metrics.error_counts["UNAVAILABLE: x"] = failed;
  r.verify_mismatches = verify_mismatches;
  return r;
}

TEST(LoadgenRunVerdictTest, EveryRequestCompletedIsZeroWithoutAMessage) {
  const RunVerdict v = JudgeRun(Counts(10, 0), /*allow_failures=*/false);
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.message, "");
}

TEST(LoadgenRunVerdictTest, SomeFailedIsOneAndAllFailedIsTwo) {
  const RunVerdict some = JudgeRun(Counts(7, 3), false);
  EXPECT_EQ(some.exit_code, kExitSomeFailed);
  EXPECT_EQ(some.exit_code, 1);
  EXPECT_NE(some.message.find("3 of 10 requests failed (1 cause"), std::string::npos)
      << some.message;
  EXPECT_NE(some.message.find("--allow-failures"), std::string::npos);
  const RunVerdict all = JudgeRun(Counts(0, 10), false);
  EXPECT_EQ(all.exit_code, kExitAllFailed);
  EXPECT_EQ(all.exit_code, 2);
}

TEST(LoadgenRunVerdictTest, AllowFailuresExitsZeroButStillSaysSo) {
  const RunVerdict v = JudgeRun(Counts(0, 10), /*allow_failures=*/true);
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.message.find("10 of 10 requests failed"), std::string::npos) << v.message;
}

TEST(LoadgenRunVerdictTest, WrongTokensFailEvenWithAllowFailures) {
  EXPECT_EQ(JudgeRun(Counts(8, 2, 2), /*allow_failures=*/true).exit_code, kExitSomeFailed);
  const RunVerdict all = JudgeRun(Counts(0, 4, 4), true);
  EXPECT_EQ(all.exit_code, kExitAllFailed);
  EXPECT_NE(all.message.find("verify: 4 requests differ"), std::string::npos) << all.message;
}

}  // namespace
}  // namespace pdserve::loadgen
