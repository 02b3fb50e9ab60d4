#include "loadgen/arrival_schedule.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace pdserve::loadgen {
namespace {

struct GapStats {
  double mean = 0;
  double cv = 0;
};

GapStats Gaps(const std::vector<double>& offsets) {
  std::vector<double> gaps;
  double prev = 0;
  for (double t : offsets) {
    gaps.push_back(t - prev);
    prev = t;
  }
  double sum = 0, sq = 0;
  for (double g : gaps) sum += g;
  const double mean = sum / gaps.size();
  for (double g : gaps) sq += (g - mean) * (g - mean);
  return {mean, std::sqrt(sq / gaps.size()) / mean};
}

ArrivalOptions Raw(double rate, ArrivalProcess process, double burstiness = 1.0) {
  ArrivalOptions o;
  o.request_rate = rate;
  o.process = process;
  o.burstiness = burstiness;
  o.normalize_total_span = false;  // the raw draws, to test their statistics
  return o;
}

constexpr int kSamples = 200000;

TEST(ArrivalScheduleTest, PoissonGapsHaveRequestedMeanRateAndUnitCv) {
  const GapStats s = Gaps(ArrivalOffsets(Raw(50, ArrivalProcess::kPoisson), kSamples, 7));
  EXPECT_NEAR(1.0 / s.mean, 50.0, 50.0 * 0.01);
  EXPECT_NEAR(s.cv, 1.0, 0.02);
}

TEST(ArrivalScheduleTest, GammaBurstinessBelowOneGivesCvAboveOne) {
  const GapStats s = Gaps(ArrivalOffsets(Raw(200, ArrivalProcess::kGamma, 0.25), kSamples, 7));
  EXPECT_NEAR(1.0 / s.mean, 200.0, 200.0 * 0.02);
  EXPECT_NEAR(s.cv, 1.0 / std::sqrt(0.25), 0.05);
}

TEST(ArrivalScheduleTest, GammaBurstinessAboveOneGivesCvBelowOne) {
  const GapStats s = Gaps(ArrivalOffsets(Raw(200, ArrivalProcess::kGamma, 4.0), kSamples, 7));
  EXPECT_NEAR(1.0 / s.mean, 200.0, 200.0 * 0.01);
  EXPECT_NEAR(s.cv, 0.5, 0.01);
}

TEST(ArrivalScheduleTest, GammaWithShapeOneMatchesPoissonStatistics) {
  const GapStats s = Gaps(ArrivalOffsets(Raw(10, ArrivalProcess::kGamma, 1.0), kSamples, 3));
  EXPECT_NEAR(1.0 / s.mean, 10.0, 0.1);
  EXPECT_NEAR(s.cv, 1.0, 0.02);
}

TEST(ArrivalScheduleTest, ConstantGapsHaveZeroCv) {
  const std::vector<double> t = ArrivalOffsets(Raw(4, ArrivalProcess::kConstant), 1000, 1);
  const GapStats s = Gaps(t);
  EXPECT_DOUBLE_EQ(s.mean, 0.25);
  EXPECT_NEAR(s.cv, 0.0, 1e-9);
  EXPECT_NEAR(t.back(), 250.0, 1e-9);
}

TEST(ArrivalScheduleTest, NormalizedScheduleEndsAtNumPromptsOverRate) {
  ArrivalOptions o;
  o.request_rate = 20;
  const std::vector<double> t = ArrivalOffsets(o, 100, 11);
  EXPECT_NEAR(t.back(), 100 / 20.0, 1e-9);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_GE(t[i], t[i - 1]);
}

TEST(ArrivalScheduleTest, InfiniteRateSendsEverythingAtZero) {
  ArrivalOptions o;  // request_rate defaults to inf
  const std::vector<double> t = ArrivalOffsets(o, 10, 1);
  ASSERT_EQ(t.size(), 10u);
  for (double v : t) EXPECT_EQ(v, 0.0);
}

TEST(ArrivalScheduleTest, SameSeedGivesSameScheduleAndOtherSeedDoesNot) {
  ArrivalOptions o;
  o.request_rate = 5;
  EXPECT_EQ(ArrivalOffsets(o, 50, 42), ArrivalOffsets(o, 50, 42));
  EXPECT_NE(ArrivalOffsets(o, 50, 42), ArrivalOffsets(o, 50, 43));
}

TEST(ArrivalScheduleTest, ParseRequestRateAcceptsInfAndRejectsNonPositive) {
  EXPECT_TRUE(std::isinf(*ParseRequestRate("inf")));
  EXPECT_TRUE(std::isinf(*ParseRequestRate("INF")));
  EXPECT_DOUBLE_EQ(*ParseRequestRate("12.5"), 12.5);
  EXPECT_FALSE(ParseRequestRate("0").ok());
  EXPECT_FALSE(ParseRequestRate("-3").ok());
  EXPECT_FALSE(ParseRequestRate("fast").ok());
  EXPECT_EQ(RequestRateName(kInfiniteRate), "inf");
  EXPECT_EQ(RequestRateName(16), "16");
}

TEST(ArrivalScheduleTest, ParseArrivalProcessKnowsTheThreeProcesses) {
  EXPECT_EQ(*ParseArrivalProcess("poisson"), ArrivalProcess::kPoisson);
  EXPECT_EQ(*ParseArrivalProcess("Gamma"), ArrivalProcess::kGamma);
  EXPECT_EQ(*ParseArrivalProcess("constant"), ArrivalProcess::kConstant);
  EXPECT_FALSE(ParseArrivalProcess("uniform").ok());
}

TEST(ArrivalScheduleTest, ValidateRejectsNonPositiveBurstiness) {
  ArrivalOptions o;
  o.burstiness = 0;
  EXPECT_EQ(ValidateArrivalOptions(o).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::loadgen
