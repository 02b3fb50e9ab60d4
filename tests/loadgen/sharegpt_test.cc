#include "loadgen/sharegpt.h"

#include <algorithm>
#include <string>
#include <vector>

#include "common/synthetic_model.h"
#include "gtest/gtest.h"

namespace pdserve::loadgen {
namespace {

std::string Words(int n, const std::string& w = "word") {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? " " : "") + w + std::to_string(i);
  return s;
}

std::string Entry(const std::string& prompt, const std::string& reply) {
  return "{\"id\": \"x\", \"conversations\": [{\"from\": \"human\", \"value\": \"" + prompt +
         "\"}, {\"from\": \"gpt\", \"value\": \"" + reply + "\"}]}";
}

TEST(ShareGptTest, PromptIsTheFirstTurnAndOutputTheSecondTurnsLength) {
  const std::string data = "[" + Entry(Words(10), Words(7)) + "]";
  absl::StatusOr<std::vector<RequestSpec>> specs = MakeShareGptWorkload(data, 3, 1, 32000, {});
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 3u);  // one entry, reused
  for (int i = 0; i < 3; ++i) {
    const RequestSpec& s = (*specs)[i];
    EXPECT_EQ(s.index, i);
    EXPECT_EQ(s.input_len, 10);
    EXPECT_EQ(s.output_len, 7);
    EXPECT_EQ(s.prompt, model::TokenizeText(Words(10), 32000));
    EXPECT_EQ(s.seed, RequestSeed(1, i));
  }
}

TEST(ShareGptTest, EntriesOutsideVllmsLimitsAreSkipped) {
  const std::string data = "[" + Entry(Words(3), Words(10)) + ", " +  // prompt < 4
                           Entry(Words(10), Words(2)) + ", " +        // output < 4
                           Entry(Words(1100), Words(10)) + ", " +     // prompt > 1024
                           Entry(Words(1000), Words(1100)) + ", " +   // total > 2048
                           "{\"conversations\": [{\"from\": \"human\", \"value\": \"a b c d e\"}]}, " +
                           Entry(Words(20), Words(30)) + "]";
  absl::StatusOr<std::vector<RequestSpec>> specs = MakeShareGptWorkload(data, 4, 7, 32000, {});
  ASSERT_TRUE(specs.ok()) << specs.status();
  for (const RequestSpec& s : *specs) {
    EXPECT_EQ(s.input_len, 20);
    EXPECT_EQ(s.output_len, 30);
  }
  // A fixed output length skips the output check, as vLLM's.
  absl::StatusOr<std::vector<RequestSpec>> fixed =
      MakeShareGptWorkload(data, 8, 7, 32000, {.fixed_output_len = 5});
  ASSERT_TRUE(fixed.ok());
  std::vector<int> lens;
  for (const RequestSpec& s : *fixed) {
    EXPECT_EQ(s.output_len, 5);
    lens.push_back(s.input_len);
  }
  std::sort(lens.begin(), lens.end());
  EXPECT_EQ(lens.front(), 10);  // the entry with a 2-word reply is in
  EXPECT_EQ(lens.back(), 1000);  // 1000 + 5 <= 2048 now
}

TEST(ShareGptTest, SeedShufflesAndRepeats) {
  std::string data = "[";
  for (int i = 0; i < 50; ++i) data += (i ? ", " : "") + Entry(Words(4 + i), Words(8));
  data += "]";
  auto lens = [&](uint64_t seed) {
    // Held: a range-for over *MakeShareGptWorkload(...) would read a destroyed temporary.
    const absl::StatusOr<std::vector<RequestSpec>> specs =
        MakeShareGptWorkload(data, 10, seed, 32000, {});
    std::vector<int> out;
    if (!specs.ok()) return out;
    for (const RequestSpec& s : *specs) out.push_back(s.input_len);
    return out;
  };
  ASSERT_EQ(lens(3).size(), 10u);
  EXPECT_EQ(lens(3), lens(3));
  EXPECT_NE(lens(3), lens(4));
}

TEST(ShareGptTest, BadFilesAreErrors) {
  EXPECT_FALSE(MakeShareGptWorkload("{\"not\": \"a list\"}", 1, 0, 32000, {}).ok());
  EXPECT_FALSE(MakeShareGptWorkload("[" + Entry(Words(2), Words(2)) + "]", 1, 0, 32000, {}).ok());
  EXPECT_EQ(LoadShareGptWorkload("/nonexistent/sharegpt.json", 1, 0, 32000, {}).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pdserve::loadgen
