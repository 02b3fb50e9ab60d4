// The circuit breaker as a policy object: known sequences of outcomes and times.
#include "router/worker_health.h"

#include "gtest/gtest.h"

namespace pdserve::router {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

CircuitBreakerPolicy Breaker() {
  return CircuitBreakerPolicy(CircuitBreakerOptions{.failure_threshold = 3,
                                                    .base_quarantine = absl::Seconds(1),
                                                    .max_quarantine = absl::Seconds(4)});
}

TEST(CircuitBreakerTest, UnknownWorkerIsPlaceable) {
  CircuitBreakerPolicy b = Breaker();
  EXPECT_TRUE(b.Placeable("decode-0", kT0));
  EXPECT_EQ(b.Health("decode-0", kT0).consecutive_failures, 0);
}

TEST(CircuitBreakerTest, OpensAfterThresholdConsecutiveFailures) {
  CircuitBreakerPolicy b = Breaker();
  b.OnFailure("d", kT0);
  b.OnFailure("d", kT0);
  EXPECT_TRUE(b.Placeable("d", kT0));
  b.OnFailure("d", kT0);
  EXPECT_FALSE(b.Placeable("d", kT0));
  EXPECT_FALSE(b.Placeable("d", kT0 + absl::Milliseconds(999)));
  EXPECT_TRUE(b.Placeable("d", kT0 + absl::Seconds(1)));  // half-open
  const WorkerHealth h = b.Health("d", kT0);
  EXPECT_TRUE(h.quarantined);
  EXPECT_EQ(h.consecutive_failures, 3);
  EXPECT_EQ(h.trips, 1);
}

TEST(CircuitBreakerTest, SuccessBetweenFailuresKeepsItClosed) {
  CircuitBreakerPolicy b = Breaker();
  for (int i = 0; i < 10; ++i) {
    b.OnFailure("d", kT0);
    b.OnFailure("d", kT0);
    b.OnSuccess("d");
  }
  EXPECT_TRUE(b.Placeable("d", kT0));
  EXPECT_EQ(b.Health("d", kT0).consecutive_failures, 0);
}

TEST(CircuitBreakerTest, FailureWhenHalfOpenReopensWithDoubledQuarantineUpToTheCap) {
  CircuitBreakerPolicy b = Breaker();
  for (int i = 0; i < 3; ++i) b.OnFailure("d", kT0);
  absl::Time t = kT0 + absl::Seconds(1);  // half-open
  const absl::Duration expected[] = {absl::Seconds(2), absl::Seconds(4), absl::Seconds(4)};
  for (absl::Duration q : expected) {
    ASSERT_TRUE(b.Placeable("d", t));
    b.OnFailure("d", t);  // one trial failed: open again at once
    EXPECT_FALSE(b.Placeable("d", t + q - absl::Milliseconds(1))) << q;
    EXPECT_TRUE(b.Placeable("d", t + q)) << q;
    t += q;
  }
  EXPECT_EQ(b.Health("d", t).trips, 4);
}

TEST(CircuitBreakerTest, SuccessClosesAndResetsTheBackoff) {
  CircuitBreakerPolicy b = Breaker();
  for (int i = 0; i < 3; ++i) b.OnFailure("d", kT0);
  b.OnFailure("d", kT0 + absl::Seconds(1));  // second trip: 2 s
  b.OnSuccess("d");
  EXPECT_TRUE(b.Placeable("d", kT0 + absl::Seconds(1)));
  for (int i = 0; i < 3; ++i) b.OnFailure("d", kT0 + absl::Seconds(10));
  // Back to the base quarantine.
  EXPECT_TRUE(b.Placeable("d", kT0 + absl::Seconds(11)));
  EXPECT_EQ(b.Health("d", kT0 + absl::Seconds(10)).trips, 1);
}

TEST(CircuitBreakerTest, LateFailuresWhileOpenDoNotExtendTheQuarantine) {
  CircuitBreakerPolicy b = Breaker();
  for (int i = 0; i < 3; ++i) b.OnFailure("d", kT0);
  b.OnFailure("d", kT0 + absl::Milliseconds(500));
  b.OnFailure("d", kT0 + absl::Milliseconds(900));
  EXPECT_TRUE(b.Placeable("d", kT0 + absl::Seconds(1)));
  EXPECT_EQ(b.Health("d", kT0).consecutive_failures, 5);
  EXPECT_EQ(b.Health("d", kT0).trips, 1);
}

TEST(CircuitBreakerTest, HalfOpenLetsExactlyOneTrialThroughUntilItsOutcome) {
  CircuitBreakerPolicy b = Breaker();
  for (int i = 0; i < 3; ++i) b.OnFailure("d", kT0);
  EXPECT_EQ(b.PlacementBudget("d", kT0), 0);  // open
  const absl::Time t = kT0 + absl::Seconds(1);
  EXPECT_EQ(b.PlacementBudget("d", t), 1);  // half-open: one trial
  EXPECT_TRUE(b.Health("d", t).half_open);
  b.OnPlaced("d", t);
  EXPECT_TRUE(b.Health("d", t).trial_in_flight);
  EXPECT_EQ(b.PlacementBudget("d", t), 0);  // the trial is out: nothing else
  EXPECT_FALSE(b.Placeable("d", t + absl::Seconds(5)));
  b.OnPlaced("d", t + absl::Seconds(5));  // not a second trial
  b.OnSuccess("d");                       // the trial succeeded: closed
  EXPECT_EQ(b.PlacementBudget("d", t + absl::Seconds(5)), kUnlimitedPlacements);
  EXPECT_FALSE(b.Health("d", t + absl::Seconds(5)).half_open);
  b.OnPlaced("d", t + absl::Seconds(5));  // closed: placements are not trials
  EXPECT_EQ(b.PlacementBudget("d", t + absl::Seconds(5)), kUnlimitedPlacements);
}

TEST(CircuitBreakerTest, FailedTrialReopensWithTheDoubledQuarantineThenOffersOneTrialAgain) {
  CircuitBreakerPolicy b = Breaker();
  for (int i = 0; i < 3; ++i) b.OnFailure("d", kT0);
  const absl::Time t = kT0 + absl::Seconds(1);
  b.OnPlaced("d", t);
  b.OnFailure("d", t + absl::Milliseconds(100));
  const absl::Time reopened = t + absl::Milliseconds(100);
  EXPECT_EQ(b.Health("d", reopened).trips, 2);
  EXPECT_EQ(b.PlacementBudget("d", reopened + absl::Milliseconds(1999)), 0);
  EXPECT_EQ(b.PlacementBudget("d", reopened + absl::Seconds(2)), 1);
}

TEST(CircuitBreakerTest, TrialWithoutOutcomeStopsHoldingTheWorkerAfterTheTrialTimeout) {
  CircuitBreakerPolicy b(CircuitBreakerOptions{.failure_threshold = 1,
                                               .base_quarantine = absl::Seconds(1),
                                               .trial_timeout = absl::Seconds(10)});
  b.OnFailure("d", kT0);
  const absl::Time t = kT0 + absl::Seconds(1);
  b.OnPlaced("d", t);  // its client cancels it: no outcome ever comes
  EXPECT_EQ(b.PlacementBudget("d", t + absl::Seconds(9)), 0);
  EXPECT_EQ(b.PlacementBudget("d", t + absl::Seconds(10)), 1);
  b.OnPlaced("d", t + absl::Seconds(10));
  EXPECT_EQ(b.PlacementBudget("d", t + absl::Seconds(10)), 0);
}

TEST(CircuitBreakerTest, WorkersAreIndependentAndForgetClearsTheRecord) {
  CircuitBreakerPolicy b = Breaker();
  for (int i = 0; i < 3; ++i) b.OnFailure("a", kT0);
  EXPECT_FALSE(b.Placeable("a", kT0));
  EXPECT_TRUE(b.Placeable("b", kT0));
  b.Forget("a");  // a restarted process registers anew
  EXPECT_TRUE(b.Placeable("a", kT0));
  EXPECT_EQ(b.Health("a", kT0).consecutive_failures, 0);
}

TEST(CircuitBreakerTest, ThresholdBelowOneNeverOpens) {
  CircuitBreakerPolicy b(CircuitBreakerOptions{.failure_threshold = 0});
  for (int i = 0; i < 100; ++i) b.OnFailure("d", kT0);
  EXPECT_TRUE(b.Placeable("d", kT0));
}

}  // namespace
}  // namespace pdserve::router
