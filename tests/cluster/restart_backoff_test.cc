// The supervisor's restart policy with known sequences of uptimes.
#include "cluster/supervisor.h"
#include "gtest/gtest.h"

namespace pdserve::cluster {
namespace {

RestartPolicyOptions Policy() {
  return RestartPolicyOptions{.initial_backoff = absl::Milliseconds(500),
                              .max_backoff = absl::Seconds(4),
                              .stable_after = absl::Seconds(30)};
}

TEST(RestartBackoffTest, QuickDeathsDoubleTheDelayUpToTheCap) {
  RestartBackoff b(Policy());
  const absl::Duration expected[] = {absl::Milliseconds(500), absl::Seconds(1), absl::Seconds(2),
                                     absl::Seconds(4), absl::Seconds(4)};
  int deaths = 0;
  for (absl::Duration d : expected) {
    EXPECT_EQ(b.OnExit(absl::Seconds(1)), d);
    EXPECT_EQ(b.quick_deaths(), ++deaths);
  }
}

TEST(RestartBackoffTest, AStableRunResetsTheBackoff) {
  RestartBackoff b(Policy());
  b.OnExit(absl::Seconds(1));
  b.OnExit(absl::Seconds(1));
  EXPECT_EQ(b.OnExit(absl::Seconds(1)), absl::Seconds(2));
  EXPECT_EQ(b.OnExit(absl::Seconds(30)), absl::Milliseconds(500));  // it stayed up
  EXPECT_EQ(b.quick_deaths(), 1);
  EXPECT_EQ(b.OnExit(absl::Seconds(1)), absl::Seconds(1));
}

TEST(RestartBackoffTest, ACleanExitRestartsAfterTheInitialDelayAndLeavesTheBackoff) {
  RestartBackoff b(Policy());
  b.OnExit(absl::Seconds(1));
  EXPECT_EQ(b.OnExit(absl::Seconds(1)), absl::Seconds(1));
  // Drained on SIGTERM, again and again within stable_after: no climb to the cap.
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(b.OnExit(absl::Seconds(1), /*clean=*/true), absl::Milliseconds(500));
  }
  EXPECT_EQ(b.quick_deaths(), 2);
  EXPECT_EQ(b.OnExit(absl::Seconds(1)), absl::Seconds(2));  // the crash backoff goes on
}

TEST(RestartBackoffTest, FirstDeathWaitsTheInitialBackoffWhateverTheUptime) {
  RestartBackoff b(Policy());
  EXPECT_EQ(b.OnExit(absl::ZeroDuration()), absl::Milliseconds(500));
}

}  // namespace
}  // namespace pdserve::cluster
