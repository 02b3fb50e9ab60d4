#include "loadgen/workload.h"

#include <algorithm>

#include "common/synthetic_model.h"
#include "gtest/gtest.h"

namespace pdserve::loadgen {
namespace {

constexpr int32_t kVocab = 1024;

TEST(WorkloadTest, RandomLengthsStayWithinRangeRatio) {
  RandomWorkloadOptions o{.input_len = 100, .output_len = 20, .range_ratio = 0.5};
  auto specs = MakeRandomWorkload(o, 2000, 1, kVocab);
  ASSERT_TRUE(specs.ok());
  int min_in = 1 << 30, max_in = 0, min_out = 1 << 30, max_out = 0;
  for (const RequestSpec& s : *specs) {
    min_in = std::min(min_in, s.input_len);
    max_in = std::max(max_in, s.input_len);
    min_out = std::min(min_out, s.output_len);
    max_out = std::max(max_out, s.output_len);
    EXPECT_EQ(static_cast<int>(s.prompt.size()), s.input_len);
  }
  // 2000 draws from 101 values hit both ends.
  EXPECT_EQ(min_in, 50);
  EXPECT_EQ(max_in, 150);
  EXPECT_EQ(min_out, 10);
  EXPECT_EQ(max_out, 30);
}

TEST(WorkloadTest, ZeroRangeRatioGivesExactLengths) {
  RandomWorkloadOptions o{.input_len = 64, .output_len = 8};
  auto specs = MakeRandomWorkload(o, 50, 1, kVocab);
  ASSERT_TRUE(specs.ok());
  for (const RequestSpec& s : *specs) {
    EXPECT_EQ(s.input_len, 64);
    EXPECT_EQ(s.output_len, 8);
  }
}

TEST(WorkloadTest, SharedPrefixStartsEveryPromptAndAddsToInputLength) {
  RandomWorkloadOptions o{.input_len = 10, .output_len = 4, .prefix_len = 32};
  auto specs = MakeRandomWorkload(o, 20, 9, kVocab);
  ASSERT_TRUE(specs.ok());
  const std::vector<int32_t> prefix((*specs)[0].prompt.begin(), (*specs)[0].prompt.begin() + 32);
  for (const RequestSpec& s : *specs) {
    EXPECT_EQ(s.input_len, 42);
    EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), s.prompt.begin())) << s.index;
  }
  // The bodies differ between requests.
  EXPECT_NE((*specs)[0].prompt, (*specs)[1].prompt);
}

TEST(WorkloadTest, SameSeedGivesSamePromptsAndSeeds) {
  RandomWorkloadOptions o{.input_len = 16, .output_len = 4, .range_ratio = 0.25};
  auto a = MakeRandomWorkload(o, 30, 5, kVocab);
  auto b = MakeRandomWorkload(o, 30, 5, kVocab);
  auto c = MakeRandomWorkload(o, 30, 6, kVocab);
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ((*a)[i].prompt, (*b)[i].prompt);
    EXPECT_EQ((*a)[i].seed, (*b)[i].seed);
    EXPECT_EQ((*a)[i].seed, RequestSeed(5, i));
    EXPECT_NE((*a)[i].seed, (*c)[i].seed);
  }
}

TEST(WorkloadTest, PromptTokensAreInsideTheVocabulary) {
  RandomWorkloadOptions o{.input_len = 200, .output_len = 1};
  auto specs = MakeRandomWorkload(o, 5, 2, 50);
  for (const RequestSpec& s : *specs) {
    for (int32_t t : s.prompt) {
      EXPECT_GE(t, 0);
      EXPECT_LT(t, 50);
    }
  }
}

TEST(WorkloadTest, InvalidRandomOptionsAreRejected) {
  EXPECT_FALSE(MakeRandomWorkload({.input_len = 10, .output_len = 0}, 1, 0, kVocab).ok());
  EXPECT_FALSE(
      MakeRandomWorkload({.input_len = 10, .output_len = 1, .range_ratio = 1.0}, 1, 0, kVocab).ok());
}

TEST(WorkloadTest, TraceReplayIsOrderedByArrivalAndKeepsTiesInFileOrder) {
  auto rows = ParseTrace(
      "{\"arrival_s\": 2.0, \"input_len\": 30, \"output_len\": 3}\n"
      "# comment\n"
      "\n"
      "{\"arrival_s\": 0.5, \"input_len\": 10, \"output_len\": 1}\n"
      "{\"timestamp\": 1.0, \"input_length\": 20, \"output_length\": 2}\n"
      "{\"arrival_s\": 1.0, \"input_len\": 21, \"output_len\": 2}\n");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ((*rows)[0].input_len, 10);
  EXPECT_EQ((*rows)[1].input_len, 20);
  EXPECT_EQ((*rows)[2].input_len, 21);
  EXPECT_EQ((*rows)[3].input_len, 30);
  EXPECT_DOUBLE_EQ((*rows)[3].arrival_s, 2.0);
}

TEST(WorkloadTest, TraceWithMissingFieldIsRejectedWithItsLine) {
  auto rows = ParseTrace("{\"arrival_s\": 0, \"input_len\": 3, \"output_len\": 1}\n"
                         "{\"arrival_s\": 1, \"input_len\": 3}\n");
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.status().message().find("line 2"), std::string::npos);
  EXPECT_FALSE(ParseTrace("not json\n").ok());
  EXPECT_FALSE(ParseTrace("").ok());
}

TEST(WorkloadTest, TraceWorkloadStartsAtZeroAndUsesTheRowLengths) {
  std::vector<TraceEntry> trace = {{1.5, 10, 2}, {2.0, 4, 1}, {3.25, 7, 5}};
  std::vector<RequestSpec> specs = MakeTraceWorkload(trace, 0, 3, kVocab, /*prefix_len=*/5);
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_DOUBLE_EQ(specs[0].arrival_s, 0.0);
  EXPECT_DOUBLE_EQ(specs[1].arrival_s, 0.5);
  EXPECT_DOUBLE_EQ(specs[2].arrival_s, 1.75);
  EXPECT_EQ(specs[0].input_len, 10);
  EXPECT_EQ(specs[1].input_len, 4);  // shorter than the prefix: all prefix
  EXPECT_EQ(specs[2].output_len, 5);
  EXPECT_TRUE(std::equal(specs[1].prompt.begin(), specs[1].prompt.end(), specs[0].prompt.begin()));
  EXPECT_EQ(MakeTraceWorkload(trace, 2, 3, kVocab, 0).size(), 2u);
}

}  // namespace
}  // namespace pdserve::loadgen
