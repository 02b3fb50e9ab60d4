#include "loadgen/metrics.h"

#include "gtest/gtest.h"

namespace pdserve::loadgen {
namespace {

// Expected values are numpy.percentile(x, p) (linear): rank = p/100 * (n - 1), by hand.
TEST(MetricsTest, PercentileInterpolatesLinearlyLikeNumpy) {
  const std::vector<double> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_DOUBLE_EQ(Percentile(x, 0), 1.0);
  EXPECT_DOUBLE_EQ(Percentile(x, 50), 5.5);   // rank 4.5
  EXPECT_DOUBLE_EQ(Percentile(x, 90), 9.1);   // rank 8.1
  EXPECT_DOUBLE_EQ(Percentile(x, 95), 9.55);  // rank 8.55
  EXPECT_NEAR(Percentile(x, 99), 9.91, 1e-12);  // rank 8.91
  EXPECT_DOUBLE_EQ(Percentile(x, 100), 10.0);
}

TEST(MetricsTest, PercentileOfUnevenValues) {
  const std::vector<double> x = {15, 20, 35, 40, 50};
  EXPECT_DOUBLE_EQ(Percentile(x, 40), 29.0);          // rank 1.6: 20 + 0.6 * 15
  EXPECT_NEAR(Percentile(x, 99.9), 49.96, 1e-9);      // rank 3.996: 40 + 0.996 * 10
  EXPECT_DOUBLE_EQ(Percentile(x, 25), 20.0);          // rank 1
}

TEST(MetricsTest, PercentileOfOneValueIsThatValueAndOfNoneIsZero) {
  EXPECT_DOUBLE_EQ(Percentile({7.5}, 99), 7.5);
  EXPECT_DOUBLE_EQ(Percentile({}, 99), 0.0);
}

TEST(MetricsTest, SummarizeUsesPopulationStdAndSortsInput) {
  const Distribution d = Summarize({9, 2, 4, 4, 5, 4, 7, 5}, {50, 99});
  EXPECT_EQ(d.count, 8u);
  EXPECT_DOUBLE_EQ(d.mean, 5.0);
  EXPECT_DOUBLE_EQ(d.std, 2.0);
  EXPECT_DOUBLE_EQ(d.median, 4.5);
  EXPECT_DOUBLE_EQ(d.min, 2.0);
  EXPECT_DOUBLE_EQ(d.max, 9.0);
  ASSERT_EQ(d.percentiles.size(), 2u);
  EXPECT_NEAR(d.percentiles[1].second, 8.86, 1e-9);  // rank 6.93: 7 + 0.93 * 2
}

TEST(MetricsTest, SummarizeOfNothingIsZeros) {
  const Distribution d = Summarize({}, {99});
  EXPECT_EQ(d.count, 0u);
  EXPECT_EQ(d.mean, 0.0);
  EXPECT_EQ(d.percentiles[0].second, 0.0);
}

TEST(MetricsTest, PercentileNameIsIntegerWhenWhole) {
  EXPECT_EQ(PercentileName(99), "99");
  EXPECT_EQ(PercentileName(50.0), "50");
  EXPECT_EQ(PercentileName(99.9), "99.9");
  EXPECT_EQ(PercentileName(99.99), "99.99");
}

TEST(MetricsTest, ParsePercentilesReadsCommaList) {
  EXPECT_EQ(*ParsePercentiles("50,90,95,99"), (std::vector<double>{50, 90, 95, 99}));
  EXPECT_EQ(*ParsePercentiles("99.9"), (std::vector<double>{99.9}));
  EXPECT_FALSE(ParsePercentiles("101").ok());
  EXPECT_FALSE(ParsePercentiles("x").ok());
}

TEST(MetricsTest, ParseSloSpecReadsEachMetric) {
  auto spec = ParseSloSpec({"ttft:200", "tpot:50 e2el:1000"});
  ASSERT_TRUE(spec.ok());
  EXPECT_DOUBLE_EQ(*spec->ttft_ms, 200);
  EXPECT_DOUBLE_EQ(*spec->tpot_ms, 50);
  EXPECT_DOUBLE_EQ(*spec->e2el_ms, 1000);
  EXPECT_TRUE(ParseSloSpec({})->empty());
  EXPECT_FALSE(ParseSloSpec({"itl:5"}).ok());
  EXPECT_FALSE(ParseSloSpec({"ttft=5"}).ok());
}

TEST(MetricsTest, MeetsSlosRequiresEveryGivenSlo) {
  SloSpec slos;
  slos.ttft_ms = 100;
  slos.tpot_ms = 10;
  EXPECT_TRUE(MeetsSlos(slos, 100, 10, 1e9));  // equal meets; e2el not given
  EXPECT_FALSE(MeetsSlos(slos, 101, 5, 0));
  EXPECT_FALSE(MeetsSlos(slos, 50, 10.5, 0));
  EXPECT_TRUE(MeetsSlos(SloSpec{}, 1e9, 1e9, 1e9));
}

}  // namespace
}  // namespace pdserve::loadgen
