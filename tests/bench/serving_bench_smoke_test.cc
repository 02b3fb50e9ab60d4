// The main job end to end: `pdserve bench` with a tiny sweep over real clusters (local and ucx),
// then the results folder is checked: report and plots exist, and every number the report
// shows for a run equals the one in that run's JSON.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/read_file.h"

namespace {

using ::pdserve::testing_util::ReadFile;

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

class ServingBenchSmokeTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    // ctest runs each test in its own process, maybe side by side: each gets its own folder.
    dir_ = new std::string(testing::TempDir() + "/pdserve-bench-smoke-" +
                           std::to_string(getpid()));
    std::filesystem::remove_all(*dir_);
    const std::string cmd = std::string(PDSERVE_BINARY) +
                            " bench --preset tiny --compute real --backends local,ucx"
                            " --input-lens 32 --output-lens 8 --rates 2,8"
                            " --cell-seconds 1 --min-prompts 6 --pool-gib 0.05"
                            " --result-dir " + *dir_ + " > " + *dir_ + ".log 2>&1";
    exit_code_ = std::system(cmd.c_str());
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    std::filesystem::remove(*dir_ + ".log");
    delete dir_;
  }

  static std::string* dir_;
  static int exit_code_;
};
std::string* ServingBenchSmokeTest::dir_ = nullptr;
int ServingBenchSmokeTest::exit_code_ = -1;

TEST_F(ServingBenchSmokeTest, ExitsCleanlyAndNamesTheReport) {
  const std::string log = ReadFile(*dir_ + ".log");
  ASSERT_EQ(exit_code_, 0) << log;
  EXPECT_NE(log.find("report: " + *dir_ + "/report.md"), std::string::npos) << log;
  EXPECT_NE(log.find("ucx "), std::string::npos) << log;  // the headline names ucx vs local
}

TEST_F(ServingBenchSmokeTest, WritesReportSummaryAndPlots) {
  for (const char* f : {"report.md", "summary.csv", "report-inputs.json", "ttft_vs_rate.png",
                        "tpot_vs_rate.png", "kv_transfer_vs_prompt.png", "ttft_breakdown.png"}) {
    EXPECT_TRUE(std::filesystem::exists(*dir_ + "/" + f)) << f;
  }
}

TEST_F(ServingBenchSmokeTest, ReportNumbersEqualTheRunJson) {
  const std::string md = ReadFile(*dir_ + "/report.md");
  int runs = 0;
  for (const char* backend : {"local", "ucx"}) {
    for (const char* rate : {"2", "8"}) {
      const std::string stem =
          std::string(backend) + "_in32_out8_rate" + rate;
      std::ifstream in(*dir_ + "/" + stem + ".json");
      ASSERT_TRUE(in) << stem;
      const nlohmann::json j = nlohmann::json::parse(in);
      EXPECT_EQ(j["failed"].get<int>(), 0) << stem;
      EXPECT_GT(j["completed"].get<int>(), 0) << stem;
      // The row as report.md prints it: backend, workload, rate, counts, TTFT mean/p99, TPOT.
      const std::string row = "| " + std::string(backend) + " | in32/out8 | " + rate + " | " +
                              std::to_string(j["completed"].get<int>()) + " | 0 | " +
                              Fixed(j["mean_ttft_ms"].get<double>(), 2) + " | " +
                              Fixed(j["p99_ttft_ms"].get<double>(), 2) + " | " +
                              Fixed(j["mean_tpot_ms"].get<double>(), 2) + " | " +
                              Fixed(j["p99_tpot_ms"].get<double>(), 2) + " |";
      EXPECT_NE(md.find(row), std::string::npos) << row << "\n" << md;
      EXPECT_NE(md.find(Fixed(j["mean_kv_transfer_ms"].get<double>(), 3)), std::string::npos);
      ++runs;
    }
  }
  EXPECT_EQ(runs, 4);
}

TEST_F(ServingBenchSmokeTest, EveryCellHasAVerdictAndEveryBackendATransferBaseline) {
  std::ifstream in(*dir_ + "/report-inputs.json");
  ASSERT_TRUE(in);
  const nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_EQ(j["runs"].size(), 4u);
  for (const nlohmann::json& run : j["runs"]) {
    EXPECT_TRUE(run["usage"]["measured"].get<bool>()) << run.dump();
    // router, prefill-0, decode-0 and the load generator.
    EXPECT_EQ(run["usage"]["processes"].size(), 4u) << run.dump();
  }
  ASSERT_EQ(j["transfer_baselines"].size(), 2u);  // local and ucx, one prompt length
  for (const nlohmann::json& b : j["transfer_baselines"]) {
    EXPECT_EQ(b["input_len"].get<int>(), 32);
    EXPECT_EQ(b["bytes"].get<uint64_t>(), j["transfer_baselines"][0]["bytes"].get<uint64_t>());
    EXPECT_GT(b["mean_ms"].get<double>(), 0);
  }
  const std::string md = ReadFile(*dir_ + "/report.md");
  EXPECT_NE(md.find("## Host-bound cells"), std::string::npos);
  EXPECT_NE(md.find("## Backends against local"), std::string::npos);
}

}  // namespace
