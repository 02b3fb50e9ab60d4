#include "bench/bootstrap.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace pdserve::bench {
namespace {

TEST(BootstrapTest, ClearlySeparatedSamplesGiveAnIntervalThatExcludesZero) {
  const std::vector<double> local = {10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.3, 10.1};
  const std::vector<double> tcp = {15.1, 14.9, 15.2, 15.0, 15.3, 14.8, 15.0, 15.1};
  const MeanDifference d = BootstrapMeanDifference(local, tcp);
  ASSERT_TRUE(d.Valid());
  EXPECT_NEAR(d.estimate, 15.05 - 10.05, 1e-9);
  EXPECT_FALSE(d.SpansZero());
  EXPECT_GT(d.lo, 4.7);
  EXPECT_LT(d.hi, 5.3);
  EXPECT_LE(d.lo, d.estimate);
  EXPECT_GE(d.hi, d.estimate);
}

TEST(BootstrapTest, OverlappingSamplesGiveAnIntervalThatSpansZero) {
  // The same spread, means 0.05 apart: noise.
  const std::vector<double> a = {8, 12, 9, 11, 10, 7, 13, 10};
  const std::vector<double> b = {12, 8, 11, 9, 10, 13, 7, 10.4};
  const MeanDifference d = BootstrapMeanDifference(a, b);
  ASSERT_TRUE(d.Valid());
  EXPECT_NEAR(d.estimate, 0.05, 1e-9);
  EXPECT_TRUE(d.SpansZero());
  EXPECT_LT(d.lo, -1.0);
  EXPECT_GT(d.hi, 1.0);
}

TEST(BootstrapTest, SignFollowsOtherMinusBaseline) {
  const std::vector<double> slow = {20, 21, 22, 20, 21};
  const std::vector<double> fast = {10, 11, 12, 10, 11};
  const MeanDifference d = BootstrapMeanDifference(slow, fast);
  EXPECT_DOUBLE_EQ(d.estimate, -10.0);
  EXPECT_LT(d.hi, 0);
}

TEST(BootstrapTest, SameSeedSameInterval) {
  const std::vector<double> a = {1, 5, 2, 8, 3, 9, 4};
  const std::vector<double> b = {2, 6, 3, 9, 4, 1, 7};
  const MeanDifference x = BootstrapMeanDifference(a, b);
  const MeanDifference y = BootstrapMeanDifference(a, b);
  EXPECT_EQ(x.lo, y.lo);
  EXPECT_EQ(x.hi, y.hi);
  const MeanDifference z = BootstrapMeanDifference(a, b, {.seed = 2});
  EXPECT_NE(x.lo, z.lo);
}

TEST(BootstrapTest, ConstantSamplesGiveAPointInterval) {
  const std::vector<double> a = {3, 3, 3};
  const std::vector<double> b = {5, 5, 5, 5};
  const MeanDifference d = BootstrapMeanDifference(a, b);
  EXPECT_DOUBLE_EQ(d.lo, 2.0);
  EXPECT_DOUBLE_EQ(d.hi, 2.0);
  EXPECT_FALSE(d.SpansZero());
}

TEST(BootstrapTest, FewerThanTwoValuesIsNotAnInterval) {
  const std::vector<double> one = {1};
  const std::vector<double> many = {1, 2, 3};
  EXPECT_FALSE(BootstrapMeanDifference(one, many).Valid());
  EXPECT_FALSE(BootstrapMeanDifference(many, {}).Valid());
}

TEST(BootstrapTest, MedianDifferenceIgnoresAFewSlowValues) {
  // Medians 10 and 10.5; one outlier in `b` moves its mean by 10 but not its median.
  const std::vector<double> a = {9, 10, 11, 9.5, 10.5, 10, 10, 9.8, 10.2};
  const std::vector<double> b = {10, 10.5, 11, 10.4, 10.6, 100, 10.5, 10.3, 10.7};
  const Difference d = BootstrapMedianDifference(a, b);
  ASSERT_TRUE(d.Valid());
  EXPECT_DOUBLE_EQ(d.estimate, 0.5);
  EXPECT_LE(d.lo, d.estimate);
  EXPECT_GE(d.hi, d.estimate);
  EXPECT_LT(d.hi, 2.0);  // the mean difference is ~10.5
  EXPECT_GT(BootstrapMeanDifference(a, b).estimate, 9.0);
}

TEST(BootstrapTest, MedianOfAnEvenSampleInterpolates) {
  const std::vector<double> a = {1, 2, 3, 4};  // median 2.5
  const std::vector<double> b = {5, 5, 5};
  EXPECT_DOUBLE_EQ(BootstrapMedianDifference(a, b).estimate, 2.5);
  EXPECT_FALSE(BootstrapMedianDifference(a, {}).Valid());
}

TEST(BootstrapTest, OneSampleMeanAndQuantileIntervals) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);  // mean 50.5, p50 50.5, p99 99.01
  const Difference mean = BootstrapMean(v);
  EXPECT_DOUBLE_EQ(mean.estimate, 50.5);
  EXPECT_LT(mean.lo, 50.5);
  EXPECT_GT(mean.hi, 50.5);
  EXPECT_GT(mean.lo, 40);  // ~ +-1.96 * 29 / 10
  EXPECT_LT(mean.hi, 61);
  const Difference p99 = BootstrapQuantile(v, 0.99);
  EXPECT_NEAR(p99.estimate, 99.01, 1e-9);
  EXPECT_LE(p99.hi, 100);  // never above the largest value
  EXPECT_LT(p99.lo, p99.estimate);
  // Few values: the p99 interval reaches down into the body of the sample.
  const std::vector<double> few = {10, 11, 12, 13, 50};
  const Difference few_p99 = BootstrapQuantile(few, 0.99);
  EXPECT_LE(few_p99.lo, 13);
  EXPECT_FALSE(BootstrapQuantile(few, 1.5).Valid());
  EXPECT_FALSE(BootstrapMean(std::vector<double>{1}).Valid());
}


TEST(BootstrapTest, RatioOfMeansIsOtherOverBaselineWithAnIntervalAroundIt) {
  const std::vector<double> colocated = {10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.3, 10.1};
  const std::vector<double> pd = {15.1, 14.9, 15.2, 15.0, 15.3, 14.8, 15.0, 15.1};
  const Ratio r = BootstrapMeanRatio(colocated, pd);
  ASSERT_TRUE(r.Valid());
  EXPECT_NEAR(r.estimate, 15.05 / 10.05, 1e-12);
  EXPECT_FALSE(r.SpansOne());
  EXPECT_LE(r.lo, r.estimate);
  EXPECT_GE(r.hi, r.estimate);
  EXPECT_GT(r.lo, 1.45);  // both samples within +-0.3 of their means
  EXPECT_LT(r.hi, 1.55);
  // The other way round, the reciprocal.
  EXPECT_NEAR(BootstrapMeanRatio(pd, colocated).estimate, 10.05 / 15.05, 1e-12);
}

TEST(BootstrapTest, RatioOfMediansIgnoresAFewSlowValuesAndSpansOneForNoise) {
  // Medians 10 and 10.5 (the outlier moves b's mean, not its median).
  const std::vector<double> a = {9, 10, 11, 9.5, 10.5, 10, 10, 9.8, 10.2};
  const std::vector<double> b = {10, 10.5, 11, 10.4, 10.6, 100, 10.5, 10.3, 10.7};
  const Ratio r = BootstrapQuantileRatio(a, b, 0.5);
  ASSERT_TRUE(r.Valid());
  EXPECT_DOUBLE_EQ(r.estimate, 1.05);
  EXPECT_LT(r.hi, 1.2);
  const std::vector<double> shuffled = {10, 9, 10.2, 11, 9.8, 10, 10.5, 9.5, 10};
  const Ratio same = BootstrapQuantileRatio(a, shuffled, 0.5);
  EXPECT_DOUBLE_EQ(same.estimate, 1.0);
  EXPECT_TRUE(same.SpansOne());
}

TEST(BootstrapTest, ConstantSamplesGiveAPointRatio) {
  const Ratio r = BootstrapQuantileRatio(std::vector<double>{4, 4, 4}, std::vector<double>{6, 6},
                                         0.5);
  EXPECT_DOUBLE_EQ(r.estimate, 1.5);
  EXPECT_DOUBLE_EQ(r.lo, 1.5);
  EXPECT_DOUBLE_EQ(r.hi, 1.5);
}

TEST(BootstrapTest, RatioNeedsTwoValuesEachAndAPositiveBaseline) {
  const std::vector<double> many = {1, 2, 3};
  EXPECT_FALSE(BootstrapMeanRatio(std::vector<double>{1}, many).Valid());
  EXPECT_FALSE(BootstrapMeanRatio(many, {}).Valid());
  EXPECT_FALSE(BootstrapMeanRatio(std::vector<double>{0, 0}, many).Valid());
  EXPECT_FALSE(BootstrapQuantileRatio(many, many, 2.0).Valid());
}

}  // namespace
}  // namespace pdserve::bench
