#include "bench/capacity.h"

#include <vector>

#include "gtest/gtest.h"

namespace pdserve::bench {
namespace {

// `completed` requests sent at `sent` req/s, each taking 0.5 s, the last finishing `lag` s after
// the others would have (a queue).
nlohmann::json Result(int completed, int failed, double throughput, double goodput,
                      double sent = 4, double lag = 0) {
  const double window = completed / sent + lag;
  return {{"completed", completed},
          {"failed", failed},
          {"request_throughput", throughput},
          {"request_goodput", goodput},
          {"duration", window + 0.5},
          {"mean_e2el_ms", 500},
          {"send_request_rate", sent}};
}

TEST(CapacityTest, ProbeHoldsOnlyWithinSlosWithoutFailuresAndKeepingUp) {
  const CapacityOptions o = DefaultCapacityOptions();
  EXPECT_TRUE(JudgeProbe(4, Result(20, 0, 3.9, 3.8), o).holds);
  EXPECT_FALSE(JudgeProbe(4, Result(20, 1, 3.9, 3.8), o).holds);  // a failure
  EXPECT_FALSE(JudgeProbe(4, Result(20, 0, 3.9, 3.0), o).holds);  // 77% within SLOs
  // A queue: the last completion 2 s later than the arrivals' pace: served 5 s / 7 s of sent.
  const CapacityProbe queued = JudgeProbe(4, Result(20, 0, 3.0, 3.0, 4, 2), o);
  EXPECT_NEAR(queued.served_ratio, 5.0 / 7.0, 1e-9);
  EXPECT_FALSE(queued.holds);
  // The probe sent 5 req/s where 4 were asked (a short Poisson sample) and kept up: holds.
  const CapacityProbe p = JudgeProbe(4, Result(20, 0, 3.9, 3.52, 5), o);
  EXPECT_NEAR(p.attainment, 3.52 / 3.9, 1e-9);
  EXPECT_NEAR(p.served_ratio, 1.0, 1e-9);
  EXPECT_TRUE(p.holds);
}

// A backend that holds up to 5 req/s: doubling 0.5 .. 4, fails at 8, then bisects 6, 5, 5.5.
TEST(CapacityTest, SearchDoublesThenBisects) {
  CapacityOptions o = DefaultCapacityOptions();
  CapacitySearch search(o);
  std::vector<double> probed;
  while (std::optional<double> rate = search.NextRate()) {
    probed.push_back(*rate);
    const bool ok = *rate <= 5.0;
    search.Record({.rate = *rate, .completed = 10, .holds = ok});
  }
  EXPECT_EQ(probed, (std::vector<double>{0.5, 1, 2, 4, 8, 6, 5, 5.5}));
  EXPECT_DOUBLE_EQ(search.Capacity(), 5.0);
  EXPECT_FALSE(search.Unbounded());
}

TEST(CapacityTest, NothingHoldsGivesZero) {
  CapacitySearch search(DefaultCapacityOptions());
  int probes = 0;
  while (std::optional<double> rate = search.NextRate()) {
    ++probes;
    search.Record({.rate = *rate, .holds = false});
  }
  EXPECT_EQ(probes, 1);
  EXPECT_EQ(search.Capacity(), 0);
}

TEST(CapacityTest, StopsAtTheMaximumRate) {
  CapacityOptions o = DefaultCapacityOptions();
  o.start_rate = 1;
  o.max_rate = 8;
  CapacitySearch search(o);
  while (std::optional<double> rate = search.NextRate()) search.Record({.rate = *rate, .holds = true});
  EXPECT_EQ(search.probes().size(), 4u);  // 1 2 4 8
  EXPECT_DOUBLE_EQ(search.Capacity(), 8);
  EXPECT_TRUE(search.Unbounded());
}

TEST(CapacityTest, RatesAddFractionsOfCapacityToTheFixedOnes) {
  EXPECT_EQ(RatesWithCapacity({1, 4, 16}, 10, {0.25, 0.5, 0.75, 0.9, 1.1}),
            (std::vector<double>{1, 2.5, 4, 5, 7.5, 9, 11, 16}));
  // A fraction equal to a fixed rate is not run twice; no capacity: the fixed rates.
  EXPECT_EQ(RatesWithCapacity({1, 4}, 8, {0.5}), (std::vector<double>{1, 4}));
  EXPECT_EQ(RatesWithCapacity({4, 1}, 0, {0.5}), (std::vector<double>{1, 4}));
  EXPECT_EQ(RatesWithCapacity({}, 3.333, {1.0}), (std::vector<double>{3.33}));
}

TEST(CapacityTest, ProbePromptsFollowTheRateWithinBounds) {
  const CapacityOptions o = DefaultCapacityOptions();
  EXPECT_EQ(ProbePrompts(0.5, o), 8);
  EXPECT_EQ(ProbePrompts(4, o), 20);
  EXPECT_EQ(ProbePrompts(100, o), 400);
}

TEST(CapacityTest, SlosAreDescribed) {
  EXPECT_EQ(DescribeSlos(DefaultCapacityOptions().slos), "TTFT <= 500 ms, TPOT <= 50 ms");
}

}  // namespace
}  // namespace pdserve::bench
