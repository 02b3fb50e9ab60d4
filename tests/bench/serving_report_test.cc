#include "bench/serving_report.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/read_file.h"

namespace pdserve::bench {
namespace {

using ::pdserve::testing_util::ReadFile;

ServingRun MakeRun(const std::string& backend, double rate, double ttft_p99, double xfer_ms) {
  ServingRun r{.backend = backend, .input_len = 128, .output_len = 16, .request_rate = rate};
  r.result = {{"completed", 10},
              {"failed", 0},
              {"mean_ttft_ms", 12.5},
              {"p99_ttft_ms", ttft_p99},
              {"mean_tpot_ms", 3.25},
              {"p99_tpot_ms", 4.5},
              {"p99_itl_ms", 5.0},
              {"p99_e2el_ms", 80.0},
              {"request_throughput", 0.97},
              {"output_throughput", 15.5},
              {"mean_kv_transfer_ms", xfer_ms},
              {"p99_kv_transfer_ms", xfer_ms * 2},
              {"kv_transfer_gbps", 1.5},
              {"kv_transfer_share_of_ttft", 0.1},
              {"mean_queue_ms", 1.0},
              {"mean_prefill_ms", 5.0}};
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

// A sampled, quiet cell on 2 CPUs.
CellUsage Quiet() {
  CellUsage u;
  u.measured = true;
  u.wall_s = 10;
  u.allowed_cpus = 2;
  u.host_busy_cpus = 0.4;
  u.processes = {{"router", 0.2}, {"prefill-0", 1.0}, {"decode-0", 2.0}, {"loadgen", 0.3}};
  return u;
}

// Per-request arrays: `n` requests with TTFT around `ttft_ms` and transfers of `xfer_ms`.
void AddRequests(ServingRun& r, int n, double ttft_ms, double xfer_ms) {
  nlohmann::json ttfts = nlohmann::json::array(), errors = nlohmann::json::array(),
                 timelines = nlohmann::json::array();
  for (int i = 0; i < n; ++i) {
    ttfts.push_back((ttft_ms + (i % 3) - 1) / 1e3);
    errors.push_back("");
    timelines.push_back(
        {{"transfer_ms", xfer_ms + 0.01 * (i % 2)}, {"kv_bytes", 4 << 20}, {"transfer_ops", 4}});
  }
  r.result["ttfts"] = ttfts;
  r.result["errors"] = errors;
  r.result["server_timelines"] = timelines;
  r.result["p99_send_lag_ms"] = 0.4;
  r.result["max_send_lag_ms"] = 0.9;
  r.usage = Quiet();
}

TEST_F(ServingReportTest, HostBoundCellIsMarkedAndKeptOutOfTheHeadline) {
  std::vector<ServingRun> runs = {MakeRun("local", 1, 20.0, 0.5), MakeRun("local", 4, 30.0, 0.5),
                                  MakeRun("ucx", 1, 21.0, 0.7), MakeRun("ucx", 4, 32.5, 0.75)};
  AddRequests(runs[0], 10, 20, 0.5);
  AddRequests(runs[1], 10, 30, 0.5);
  AddRequests(runs[2], 10, 30, 9.5);  // +10 ms TTFT, +9 ms transfer
  AddRequests(runs[3], 10, 30, 0.5);
  runs[3].usage.processes[2].cpu_s = 9.6;  // decode-0 at 0.96 of a core
  std::string headline;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline).ok());
  EXPECT_EQ(headline,
            "ucx vs local: mean TTFT higher in 1 and lower in 0 of 1 comparable cells (95% "
            "bootstrap interval excludes zero); largest at in128/out16 at 1 req/s: +10.000 ms "
            "[9.300, 10.700], explained by KV transfer +9.000 ms [8.996, 9.004] for the same "
            "4.0 MiB (4 vs 4 ops) (kept out of this line: 1 host-bound of 4 cells)");
  const std::string md = ReadFile(dir_ + "/report.md");
  EXPECT_NE(md.find("HOST-BOUND: decode-0 used 0.96 of a core (> 0.85)"), std::string::npos) << md;
  // Its interval is still printed, marked as excluded.
  EXPECT_NE(md.find("| ucx | in128/out16 | 4 | local | +0.000 [-0.700, 0.700] | +0.000 "
                    "[-0.004, 0.004] | 4.0 / 4, 4.0 / 4 | 10, 10 | excluded: this cell "
                    "host-bound or unverified |"),
            std::string::npos)
      << md;
  EXPECT_NE(ReadFile(dir_ + "/summary.csv").find(",1,\"decode-0 used 0.96 of a core (> 0.85)\","),
            std::string::npos);
}

TEST_F(ServingReportTest, UnsampledCellsAreNotVouchedFor) {
  std::vector<ServingRun> runs = {MakeRun("local", 4, 30.0, 0.5), MakeRun("ucx", 4, 32.5, 0.75)};
  std::string headline;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline).ok());
  EXPECT_EQ(headline,
            "ucx vs local: no comparison (1 cell pairs, none where both cells are verified, not "
            "host-bound and completed 2 or more requests) (kept out of this line: 2 unverified of "
            "2 cells)");
  EXPECT_NE(ReadFile(dir_ + "/report.md").find("unverified: CPU and engine counters not sampled"),
            std::string::npos);
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
  ServingRun failed{.backend = "ucx",
                    .input_len = 128,
                    .output_len = 16,
                    .request_rate = 4,
                    .error = "cluster did not start"};
  std::vector<ServingRun> runs = {MakeRun("local", 4, 30.0, 0.5), failed};
  std::string headline;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline).ok());
  const std::string md = ReadFile(dir_ + "/report.md");
  EXPECT_NE(md.find("FAILED"), std::string::npos);
  EXPECT_NE(md.find("cluster did not start"), std::string::npos);
  EXPECT_NE(ReadFile(dir_ + "/summary.csv").find("cluster did not start"), std::string::npos);
}

TEST_F(ServingReportTest, MultiLineErrorStaysInItsRow) {
  ServingRun failed{.backend = "ucx-tcp",
                    .input_len = 128,
                    .output_len = 16,
                    .request_rate = 4,
                    .error = "cluster did not start:\nworker 1 | exited 1\nsee logs"};
  std::vector<ServingRun> runs = {MakeRun("local", 4, 30.0, 0.5), failed};
  std::string headline;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline).ok());
  const std::string md = ReadFile(dir_ + "/report.md");
  const size_t at = md.find("| ucx-tcp | in128/out16 | 4 | FAILED");
  ASSERT_NE(at, std::string::npos) << md;
  const std::string line = md.substr(at, md.find('\n', at) - at);
  EXPECT_NE(line.find("cluster did not start: worker 1 \\| exited 1 see logs"), std::string::npos)
      << line;
  // The row has as many unescaped separators as the header.
  auto separators = [](const std::string& l) {
    int n = 0;
    for (size_t i = 0; i < l.size(); ++i) n += l[i] == '|' && (i == 0 || l[i - 1] != '\\');
    return n;
  };
  const size_t header = md.find("| backend | workload | rate (req/s)");
  ASSERT_NE(header, std::string::npos);
  EXPECT_EQ(separators(line), separators(md.substr(header, md.find('\n', header) - header)));
}

TEST_F(ServingReportTest, PlotsAreDrawnWhenGnuplotIsInstalled) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "no gnuplot";
  std::vector<ServingRun> runs = {MakeRun("local", 1, 20.0, 0.5), MakeRun("local", 4, 30.0, 0.5),
                                  MakeRun("ucx", 1, 21.0, 0.7), MakeRun("ucx", 4, 32.5, 0.75)};
  std::string headline;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline).ok());
  for (const char* png : {"ttft_vs_rate.png", "tpot_vs_rate.png", "kv_transfer_vs_prompt.png",
                          "ttft_breakdown.png"}) {
    EXPECT_GT(std::filesystem::file_size(dir_ + "/" + png), 1000u) << png;
  }
}

// The TTFT stage means (loadgen's mean_ttft_stage_*_ms) as the report's table and as the
// breakdown plot's data: the same numbers, in path order, adding up to the cell's TTFT.
TEST_F(ServingReportTest, TtftStagesTableAndBreakdownShowTheStageMeans) {
  std::vector<ServingRun> runs = {MakeRun("local", 1, 20.0, 0.5), MakeRun("local", 4, 30.0, 0.5)};
  const std::pair<const char*, double> stages[] = {
      {"queue", 1.0},       {"allocate", 0.25},    {"dispatch", 0.125},
      {"prefill", 5.0},     {"kv_transfer", 0.5},  {"decode_admit", 0.25},
      {"first_step", 5.0},  {"relay", 0.125},      {"other", 0.25}};  // sum 12.5 = mean TTFT
  for (const auto& [stage, ms] : stages) {
    runs[0].result[std::string("mean_ttft_stage_") + stage + "_ms"] = ms;
  }
  runs[0].result["ttft_stage_requests"] = 10;
  // The second cell has no stages (a result written before them): "-" and no plot row.
  std::string headline;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline).ok());
  const std::string md = ReadFile(dir_ + "/report.md");
  EXPECT_NE(md.find("| backend | workload | rate | queue | allocate | dispatch | prefill | "
                    "kv_transfer | decode_admit | first_step | relay | other | sum = TTFT (ms) | "
                    "requests |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| local | in128/out16 | 1 | 1.000 | 0.250 | 0.125 | 5.000 | 0.500 | 0.250 "
                    "| 5.000 | 0.125 | 0.250 | 12.50 | 10 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| local | in128/out16 | 4 | - | - | - | - | - | - | - | - | - | - | - |"),
            std::string::npos)
      << md;
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "no gnuplot";
  const std::string dat = ReadFile(dir_ + "/ttft_breakdown_w0.dat");
  EXPECT_EQ(dat,
            "# cell queue allocate dispatch prefill kv_transfer decode_admit first_step relay "
            "other\n\"local 1/s*\" 1 0.25 0.125 5 0.5 0.25 5 0.125 0.25\n");
  EXPECT_GT(std::filesystem::file_size(dir_ + "/ttft_breakdown.png"), 1000u);
}

TEST_F(ServingReportTest, RewrittenReportEqualsTheOriginal) {
  std::vector<ServingRun> runs = {MakeRun("local", 4, 20.0, 1.0), MakeRun("ucx", 4, 35.0, 9.0),
                                  MakeRun("ucx", INFINITY, 50.0, 12.0)};
  runs[2].result_file = "ucx_inf.json";
  runs[2].error = "cluster did not start: port taken";
  AddRequests(runs[0], 6, 20, 1.0);
  AddRequests(runs[1], 6, 35, 9.0);
  runs[1].usage.engines = {
      {.worker = "decode-0", .decode = true, .steps = 10, .overrun_steps = 3, .modelled_us = 100,
       .overrun_us = 30}};
  runs[1].planned_prompts = 12;
  for (const ServingRun& r : runs) {
    std::ofstream(dir_ + "/" + r.result_file) << r.result.dump();
  }
  context_.device = "a GPU";
  context_.baseline = "local";
  context_.decode_pool_gib = 7.5;
  context_.transfer_baselines = {{.backend = "ucx",
                                  .input_len = 128,
                                  .blocks = 8,
                                  .bytes = 16 << 20,
                                  .ops = 8,
                                  .transfers = 5,
                                  .mean_ms = 4.5}};
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
  EXPECT_NE(report.find("decode-0: overruns added 30.0% to its modelled time"), std::string::npos)
      << report;
  EXPECT_NE(report.find("| ucx | 128 | 8 | 16.0 | 8 | 5 | 4.500 |"), std::string::npos);
}

// Adds what TPOT and goodput need to AddRequests' arrays: 16 output tokens at `tpot_ms` each,
// in a run of 10 s.
void AddDecode(ServingRun& r, double tpot_ms) {
  nlohmann::json latencies = nlohmann::json::array(), outputs = nlohmann::json::array();
  for (const nlohmann::json& t : r.result["ttfts"]) {
    latencies.push_back(t.get<double>() + 15 * tpot_ms / 1e3);
    outputs.push_back(16);
  }
  r.result["latencies"] = latencies;
  r.result["output_lens"] = outputs;
  r.result["duration"] = 10.0;
}

TEST_F(ServingReportTest, PdAgainstColocatedHasItsOwnSectionLineAndCsv) {
  std::vector<ServingRun> runs = {MakeRun("local", 1, 30.0, 0.5), MakeRun("ucx", 1, 30.0, 0.5),
                                  MakeRun("colocated", 1, 20.0, 0.0)};
  AddRequests(runs[0], 10, 30, 0.5);
  AddRequests(runs[1], 10, 40, 0.5);
  AddRequests(runs[2], 10, 20, 0.0);
  AddDecode(runs[0], 4);
  AddDecode(runs[1], 4);
  AddDecode(runs[2], 5);
  runs[1].usage.processes[2].cpu_s = 9.6;  // ucx's decode-0 at 0.96 of a core: host-bound
  context_.slo = {"ttft:35"};              // local's 29-31 ms meet it, ucx's 39-41 ms do not
  for (ServingRun& r : runs) {
    r.result_file = r.backend + ".json";
    std::ofstream(dir_ + "/" + r.result_file) << r.result.dump();
  }
  std::string headline;
  nlohmann::json ratios;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline, &ratios).ok());
  // The transfer line knows nothing of colocated; the second line is P/D against it.
  const size_t newline = headline.find('\n');
  ASSERT_NE(newline, std::string::npos) << headline;
  EXPECT_EQ(headline.substr(0, newline).find("colocated"), std::string::npos) << headline;
  const std::string summary = headline.substr(newline + 1);
  EXPECT_EQ(summary.rfind("P/D TTFT p50 / colocated at 1 req/s: local 1.50x [", 0), 0u) << summary;
  EXPECT_NE(summary.find("in128/out16 (TPOT p50 0.80x) (left out: ucx in128/out16 (P/D cell "
                         "host-bound))"),
            std::string::npos)
      << summary;

  const std::string md = ReadFile(dir_ + "/report.md");
  EXPECT_NE(md.find("**P/D against colocated** (cells that are not host-bound only; P/D / "
                    "colocated, 95% bootstrap interval): " + summary + "\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("## P/D against colocated"), std::string::npos);
  EXPECT_NE(md.find("SLOs: TTFT <= 35 ms (--slo)"), std::string::npos);
  EXPECT_NE(md.find("| local | in128/out16 | 1 | 30.00 / 20.00 | 1.50x ["), std::string::npos)
      << md;
  EXPECT_NE(md.find("| 1.000 / 1.000 | 100% / 100% | 10, 10 | ok |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 0.000 / 1.000 | 0% / 100% | 10, 10 | excluded: P/D cell host-bound |"),
            std::string::npos)
      << md;
  // Colocated is no transport: no row against the transfer baseline.
  EXPECT_EQ(md.find("| colocated | in128/out16 | 1 | local |"), std::string::npos);

  ASSERT_EQ(ratios.size(), 2u);
  EXPECT_EQ(ratios[0]["pd_backend"], "local");
  EXPECT_DOUBLE_EQ(ratios[0]["ttft_p50_ratio"]["estimate"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(ratios[1]["pd_goodput"].get<double>(), 0.0);
  EXPECT_FALSE(ratios[1]["comparable"].get<bool>());
  const std::string csv = ReadFile(dir_ + "/colocated_ratios.csv");
  EXPECT_NE(csv.find("\nlocal,128,16,1,30,20,1.5,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nucx,128,16,1,40,20,2,"), std::string::npos) << csv;

  // report-inputs.json keeps the ratios and the SLOs: drawn again, the report is the same.
  ASSERT_TRUE(WriteServingReportInputs(dir_, context_, runs, ratios).ok());
  const nlohmann::json inputs = nlohmann::json::parse(ReadFile(dir_ + "/report-inputs.json"));
  EXPECT_EQ(inputs["colocated_ratios"], ratios);
  EXPECT_EQ(inputs["slo"], nlohmann::json({"ttft:35"}));
  std::filesystem::remove(dir_ + "/report.md");
  std::string again;
  ASSERT_TRUE(RewriteServingReport(dir_, &again).ok());
  EXPECT_EQ(again, headline);
  EXPECT_EQ(ReadFile(dir_ + "/report.md"), md);
}

TEST_F(ServingReportTest, NoColocatedRunsNoColocatedSection) {
  std::vector<ServingRun> runs = {MakeRun("local", 4, 30.0, 0.5), MakeRun("ucx", 4, 32.5, 0.75)};
  std::string headline;
  nlohmann::json ratios;
  ASSERT_TRUE(WriteServingReport(dir_, context_, runs, &headline, &ratios).ok());
  EXPECT_EQ(headline.find('\n'), std::string::npos);
  EXPECT_TRUE(ratios.is_null());
  EXPECT_EQ(ReadFile(dir_ + "/report.md").find("colocated"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/colocated_ratios.csv"));
}

TEST_F(ServingReportTest, RewriteWithoutInputsIsNotFound) {
  std::string headline;
  EXPECT_EQ(RewriteServingReport(dir_, &headline).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pdserve::bench
