// The control-plane bench's same-run baseline (bench/handoff_floor.h): a chain of processes
// that pass one byte on. The values are timings, so only their shape is checked: one per pass,
// positive, and no process left behind.
#include "bench/handoff_floor.h"

#include <sys/wait.h>

#include <cerrno>

#include "gtest/gtest.h"

namespace pdserve::bench {
namespace {

TEST(HandoffFloorTest, OneTimePerPassFromEveryChainAndNoProcessLeftBehind) {
  absl::StatusOr<HandoffFloor> floor = MeasureHandoffFloor(3, 5, absl::Milliseconds(1));
  ASSERT_TRUE(floor.ok()) << floor.status();
  EXPECT_EQ(floor->hops, 3);
  ASSERT_EQ(floor->us.size(), 5u);
  for (double us : floor->us) {
    EXPECT_GT(us, 0.0);
    EXPECT_LT(us, 10e6) << "a pass took more than 10 s";
  }
  // Every stage was reaped: this process has no child left.
  errno = 0;
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(HandoffFloorTest, HopsAndPassesOutsideTheirBoundsAreRefused) {
  EXPECT_EQ(MeasureHandoffFloor(0, 5, absl::ZeroDuration()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MeasureHandoffFloor(17, 5, absl::ZeroDuration()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MeasureHandoffFloor(2, 0, absl::ZeroDuration()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::bench
