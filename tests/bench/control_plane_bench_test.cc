// `pdserve bench control-plane` end to end: a few sequential requests over a real 1P1D cluster.
// Its JSON carries every measured request's stamps, so that a reader can decompose the gap
// (the stages' medians do not add up); each row's gap is the one the table's median comes from.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/read_file.h"

namespace {

using ::pdserve::testing_util::ReadFile;

TEST(ControlPlaneBenchTest, JsonRowsAreEachRequestsOrderedStampsAndGiveTheGap) {
  const std::string base =
      testing::TempDir() + "/pdserve-bench-cp-" + std::to_string(getpid());
  const std::string cmd = std::string(PDSERVE_BINARY) +
                          " bench control-plane --requests 6 --warmup 1 --gap-ms 2"
                          " --floor-hops 0 --json " + base + ".json > " + base + ".log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadFile(base + ".log");
  const nlohmann::json j =
      nlohmann::json::parse(ReadFile(base + ".json"), nullptr, /*allow_exceptions=*/false);
  std::filesystem::remove(base + ".json");
  std::filesystem::remove(base + ".log");
  ASSERT_TRUE(j.is_object());
  ASSERT_TRUE(j["timelines"].is_array());
  ASSERT_EQ(j["timelines"].size(), 6u);  // the measured ones, not the warm-up
  std::vector<int64_t> gaps;
  for (const nlohmann::json& t : j["timelines"]) {
    const int64_t arrival = t["arrival"], scheduled = t["scheduled"];
    const int64_t prefill_start = t["prefill_start"], prefill_end = t["prefill_end"];
    const int64_t transfer_start = t["transfer_start"], transfer_end = t["transfer_end"];
    const int64_t kv_landed = t["kv_landed"], first_token = t["first_token"];
    EXPECT_GT(arrival, 0);
    EXPECT_LE(arrival, scheduled);
    EXPECT_LE(scheduled, prefill_start);
    EXPECT_LE(prefill_start, prefill_end);
    EXPECT_LE(prefill_end, transfer_start);
    EXPECT_LE(transfer_start, transfer_end);
    EXPECT_LE(transfer_start, kv_landed);
    EXPECT_LT(arrival, first_token);
    const int64_t landed = kv_landed > 0 ? std::min(transfer_end, kv_landed) : transfer_end;
    const int64_t gap = (first_token - arrival) - (prefill_end - prefill_start) -
                        (landed - transfer_start);
    EXPECT_EQ(t["gap"].get<int64_t>(), gap);
    gaps.push_back(gap);
  }
  // The printed median is the rows' median (an even count: the mean of the middle two).
  std::sort(gaps.begin(), gaps.end());
  const double median = (static_cast<double>(gaps[2]) + static_cast<double>(gaps[3])) / 2;
  EXPECT_DOUBLE_EQ(j["gap_median_us"]["estimate"].get<double>(), median);
}

}  // namespace
