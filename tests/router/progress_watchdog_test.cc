// The decode progress watchdog: streams without a token past their bound are cancelled once.
#include "router/progress_watchdog.h"

#include "gtest/gtest.h"

namespace pdserve::router {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(5000);

TEST(ProgressWatchdogTest, StreamWithoutFirstTokenIsCancelledAfterItsBound) {
  ProgressWatchdog dog;
  int cancels = 0;
  auto watch =
      dog.Start("r1", "decode-0", kT0, absl::Seconds(10), absl::Seconds(2), [&] { cancels++; });
  EXPECT_TRUE(dog.Sweep(kT0 + absl::Seconds(10)).empty());
  const auto stalled = dog.Sweep(kT0 + absl::Seconds(10) + absl::Milliseconds(1));
  ASSERT_EQ(stalled.size(), 1u);
  EXPECT_EQ(stalled[0].request_id, "r1");
  EXPECT_EQ(stalled[0].worker, "decode-0");
  EXPECT_EQ(stalled[0].silent, absl::Seconds(10) + absl::Milliseconds(1));
  EXPECT_EQ(cancels, 1);
  EXPECT_TRUE(watch->stalled());
  EXPECT_TRUE(dog.Sweep(kT0 + absl::Seconds(60)).empty());  // reported once
  EXPECT_EQ(cancels, 1);
}

TEST(ProgressWatchdogTest, TokensKeepTheStreamAliveThenTheTokenBoundApplies) {
  ProgressWatchdog dog;
  int cancels = 0;
  auto watch = dog.Start("r1", "d", kT0, absl::Seconds(10), absl::Seconds(2), [&] { cancels++; });
  absl::Time t = kT0 + absl::Seconds(9);
  for (int i = 0; i < 20; ++i, t += absl::Seconds(1)) {
    watch->Progress(t);
    EXPECT_TRUE(dog.Sweep(t + absl::Seconds(2)).empty());
  }
  EXPECT_EQ(dog.Sweep(t - absl::Seconds(1) + absl::Seconds(2) + absl::Milliseconds(1)).size(), 1u);
  EXPECT_EQ(cancels, 1);
}

TEST(ProgressWatchdogTest, FinishedStreamIsForgotten) {
  ProgressWatchdog dog;
  int cancels = 0;
  {
    auto watch = dog.Start("r1", "d", kT0, absl::Seconds(1), absl::Seconds(1), [&] { cancels++; });
    EXPECT_EQ(dog.watched(), 1u);
  }
  EXPECT_EQ(dog.watched(), 0u);
  EXPECT_TRUE(dog.Sweep(kT0 + absl::Hours(1)).empty());
  EXPECT_EQ(cancels, 0);
}

TEST(ProgressWatchdogTest, ZeroBoundDisablesTheWatch) {
  ProgressWatchdog dog;
  int cancels = 0;
  auto watch =
      dog.Start("r1", "d", kT0, absl::ZeroDuration(), absl::Seconds(1), [&] { cancels++; });
  EXPECT_TRUE(dog.Sweep(kT0 + absl::Hours(1)).empty());
  watch->Progress(kT0);
  EXPECT_TRUE(dog.Sweep(kT0 + absl::Hours(1)).empty());
  EXPECT_FALSE(watch->stalled());
}

}  // namespace
}  // namespace pdserve::router
