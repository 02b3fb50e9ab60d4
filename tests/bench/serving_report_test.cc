#include "bench/serving_report.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace pdserve::bench {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ServingRun MakeRun(const std::string& backend, double rate, double ttft_p99, double xfer_ms) {
  ServingRun r{.backend = backend, .input_len = 128, .output_len = 16, .request_rate = rate};
  r.result = {{"completed", 10},          {"failed", 0},
              {"mean_ttft_ms", 12.5},      {"p99_ttft_ms", ttft_p99},
              {"mean_tpot_ms", 3.25},      {"p99_tpot_ms", 4.5},
              {"p99_itl_ms", 5.0},         {"p99_e2el_ms", 80.0},
              {"request_throughput", 0.97}, {"output_throughput", 15.5},
              {"mean_kv_transfer_ms", xfer_ms}, {"p99_kv_transfer_ms", xfer_ms * 2},
              {"kv_transfer_gbps", 1.5},   {"kv_transfer_share_of_ttft", 0.1},
              {"mean_queue_ms", 1.0},      {"mean_prefill_ms", 5.0}};
  r.result_file = backend + ".json";
  return r;
}

class ServingReportTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/report_" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  std::string dir_;
  ServingReportContext context_{.date = "2026-11-23", .preset = "tiny", .compute = "real"};
};

TEST_F(ServingReportTest, HeadlineComparesUcxWithLocalAtTheMiddleRate) {
  std::vector<ServingRun> runs = {MakeRun("local", 1, 20.0, 0.5), MakeRun("local", 4, 30.0, 0.5),
                                  MakeRun("local", 16, 90.0, 0.5), MakeRun("ucx", 1, 21.0, 0.7),
                                  MakeRun("ucx", 4, 32.5, 0.75), MakeRun("ucx", 16, 95.0, 0.9)};
  std::string headline;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline).ok());
  EXPECT_EQ(headline,
            "ucx adds 2.50 ms to TTFT p99 at 4 req/s vs local (mean KV transfer +0.250 ms)");
}

TEST_F(ServingReportTest, ReportTableShowsTheJsonValues) {
  std::vector<ServingRun> runs = {MakeRun("local", 4, 30.0, 0.5), MakeRun("ucx", 4, 32.5, 0.75)};
  std::string headline;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline).ok());
  const std::string md = ReadFile(dir_ + "/report.md");
  EXPECT_NE(md.find("| ucx | in128/out16 | 4 | 10 | 0 | 12.50 | 32.50 | 3.25 | 4.50 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("0.750"), std::string::npos);
}

TEST_F(ServingReportTest, FailedRunIsReportedNotHidden) {
  ServingRun failed{.backend = "ucx", .input_len = 128, .output_len = 16, .request_rate = 4,
                    .error = "cluster did not start"};
  std::vector<ServingRun> runs = {MakeRun("local", 4, 30.0, 0.5), failed};
  std::string headline;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline).ok());
  const std::string md = ReadFile(dir_ + "/report.md");
  EXPECT_NE(md.find("FAILED"), std::string::npos);
  EXPECT_NE(md.find("cluster did not start"), std::string::npos);
  EXPECT_NE(ReadFile(dir_ + "/summary.csv").find("cluster did not start"), std::string::npos);
}

TEST_F(ServingReportTest, PlotsAreDrawnWhenGnuplotIsInstalled) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "no gnuplot";
  std::vector<ServingRun> runs = {MakeRun("local", 1, 20.0, 0.5), MakeRun("local", 4, 30.0, 0.5),
                                  MakeRun("ucx", 1, 21.0, 0.7), MakeRun("ucx", 4, 32.5, 0.75)};
  std::string headline;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline).ok());
  for (const char* png : {"ttft_p99_vs_rate.png", "tpot_p99_vs_rate.png", "ttft_breakdown.png"}) {
    EXPECT_GT(std::filesystem::file_size(dir_ + "/" + png), 1000u) << png;
  }
}

TEST_F(ServingReportTest, RewrittenReportEqualsTheOriginal) {
  std::vector<ServingRun> runs = {MakeRun("local", 4, 20.0, 1.0), MakeRun("ucx", 4, 35.0, 9.0),
                                  MakeRun("ucx", INFINITY, 50.0, 12.0)};
  runs[2].result_file = "ucx_inf.json";
  runs[2].error = "cluster did not start: port taken";
  for (const ServingRun& r : runs) {
    std::ofstream(dir_ + "/" + r.result_file) << r.result.dump();
  }
  context_.device = "a GPU";
  context_.baseline = "local";
  std::string first, second;
  ASSERT_TRUE(WriteServingReportInputs(dir_, context_, runs).ok());
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &first).ok());
  const std::string report = ReadFile(dir_ + "/report.md");
  const std::string summary = ReadFile(dir_ + "/summary.csv");
  std::filesystem::remove(dir_ + "/report.md");
  std::filesystem::remove(dir_ + "/summary.csv");

  absl::Status rewritten = RewriteServingReport(dir_, &second);
  ASSERT_TRUE(rewritten.ok()) << rewritten;
  EXPECT_EQ(second, first);
  EXPECT_EQ(ReadFile(dir_ + "/report.md"), report);
  EXPECT_EQ(ReadFile(dir_ + "/summary.csv"), summary);
}

TEST_F(ServingReportTest, RewriteWithoutInputsIsNotFound) {
  std::string headline;
  EXPECT_EQ(RewriteServingReport(dir_, &headline).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pdserve::bench
