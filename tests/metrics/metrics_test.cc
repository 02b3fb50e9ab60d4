// Counters, gauges, histograms and the registry's rules, without any I/O.

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/registry.h"

namespace pdserve::metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CounterTest, OnlyGrows) {
  Counter c;
  c.Inc();
  c.Inc(2.5);
  c.Inc(-7);
  c.Inc(std::nan(""));
  EXPECT_EQ(c.Value(), 3.5);
}

TEST(GaugeTest, SetsAndAdds) {
  Gauge g;
  g.Set(4);
  g.Add(-1.5);
  EXPECT_EQ(g.Value(), 2.5);
}

TEST(HistogramTest, ValueOnABoundCountsInThatBucketAndBucketsAreCumulative) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 1.0, 5.0, 50.0, std::nan("")}) h.Observe(v);
  const Histogram::Snapshot s = h.Read();
  // le=0.1: 0.05, 0.1; le=1: + 0.5, 1.0; le=10: + 5; +Inf: + 50. NaN is not counted.
  EXPECT_THAT(s.cumulative, ElementsAre(2u, 4u, 5u, 6u));
  EXPECT_EQ(s.count(), 6u);
  EXPECT_DOUBLE_EQ(s.sum, 0.05 + 0.1 + 0.5 + 1.0 + 5.0 + 50.0);
}

TEST(HistogramTest, ConcurrentObservationsAreAllCounted) {
  Histogram h({1, 2, 3});
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kEach; ++i) h.Observe(t);  // 0 and 1 in le=1, 2 in le=2, 3 in le=3
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(h.Read().cumulative, ElementsAre(2u * kEach, 3u * kEach, 4u * kEach, 4u * kEach));
  EXPECT_DOUBLE_EQ(h.Read().sum, kEach * (0 + 1 + 2 + 3));
}

TEST(BucketBoundsTest, MustBeFiniteAndIncreasing) {
  EXPECT_TRUE(CheckBucketBounds(std::vector<double>{0.1, 1}).ok());
  EXPECT_FALSE(CheckBucketBounds(std::vector<double>{}).ok());
  EXPECT_FALSE(CheckBucketBounds(std::vector<double>{1, 1}).ok());
  EXPECT_FALSE(CheckBucketBounds(std::vector<double>{2, 1}).ok());
  EXPECT_FALSE(CheckBucketBounds(std::vector<double>{1, INFINITY}).ok());
}

TEST(RegistryTest, RefusesBadNamesAndDuplicates) {
  Registry r;
  EXPECT_TRUE(r.AddCounter("vllm:prompt_tokens_total", "help", {"model_name"}).ok());
  EXPECT_EQ(r.AddGauge("vllm:prompt_tokens_total", "again").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r.AddCounter("9lives", "h").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("a-b", "h").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("ok_name", "h", {"bad:label"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("ok_name", "h", {"__reserved"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddCounter("ok_name", "h", {"a", "a"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h_seconds", "h", {"le"}, {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h_seconds", "h", {}, {2, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.Names(), ElementsAre("vllm:prompt_tokens_total"));
}

TEST(FamilyTest, SeriesAreStableAndLabelValuesChecked) {
  Registry r;
  CounterFamily* f = r.AddCounter("requests_total", "h", {"model_name", "reason"}).value();
  Counter* a = f->Get({"tiny", "length"}).value();
  a->Inc(3);
  EXPECT_EQ(f->Get({"tiny", "length"}).value(), a);
  EXPECT_EQ(f->Get({"tiny"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->Get({"tiny", std::string(kMaxLabelValueBytes + 1, 'x')}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->Snapshot().series.size(), 1u);
  EXPECT_EQ(f->Snapshot().series[0].value, 3);
}

TEST(FamilyTest, BoundsTheNumberOfSeries) {
  Registry r;
  GaugeFamily* f = r.AddGauge("per_peer", "h", {"peer"}).value();
  for (size_t i = 0; i < kMaxSeries; ++i) ASSERT_TRUE(f->Get({std::to_string(i)}).ok());
  absl::StatusOr<Gauge*> more = f->Get({"one-too-many"});
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(more.status().message(), HasSubstr("per_peer"));
  EXPECT_TRUE(f->Get({"0"}).ok());  // existing series stay reachable
}

TEST(RegistryTest, UnlabelledFamiliesReadZeroBeforeTheirFirstUpdate) {
  Registry r;
  r.AddCounter("c_total", "h").value();
  r.AddHistogram("h_seconds", "h", {}, {1}).value();
  const std::vector<FamilySnapshot> s = r.Snapshot();
  ASSERT_EQ(s.size(), 2u);
  ASSERT_EQ(s[0].series.size(), 1u);
  EXPECT_EQ(s[0].series[0].value, 0);
  ASSERT_EQ(s[1].series.size(), 1u);
  EXPECT_EQ(s[1].series[0].histogram->count(), 0u);
}

TEST(RegistryTest, CollectorsRunBeforeEverySnapshot) {
  Registry r;
  Gauge* g = r.AddGauge("queue_length", "h").value()->Get({}).value();
  int calls = 0;
  r.AddCollector([&] { g->Set(++calls * 10); });
  EXPECT_EQ(r.Snapshot()[0].series[0].value, 10);
  EXPECT_EQ(r.Snapshot()[0].series[0].value, 20);
}

TEST(RegistryTest, RegistriesAreIndependent) {
  Registry a, b;
  a.AddCounter("x_total", "h").value()->Get({}).value()->Inc(5);
  b.AddCounter("x_total", "h").value();  // the same name in another registry is fine
  EXPECT_EQ(a.Snapshot()[0].series[0].value, 5);
  EXPECT_EQ(b.Snapshot()[0].series[0].value, 0);
}

}  // namespace
}  // namespace pdserve::metrics
