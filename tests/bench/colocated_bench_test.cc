// `pdserve bench` with colocated as a backend, end to end: a one-cell sweep of the tiny model
// (modelled compute) over local and colocated clusters. The colocated cell serves the same
// prompts with tokens verified against the model and moves no KV; the report sets local against
// it, and the sweep's files carry the same pairs.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/read_file.h"

namespace {

using ::pdserve::testing_util::ReadFile;

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadFile(path), nullptr, /*allow_exceptions=*/false);
}

class ColocatedBenchTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::TempDir() + "/pdserve-bench-colocated-" +
                           std::to_string(getpid()));
    std::filesystem::remove_all(*dir_);
    const std::string cmd = std::string(PDSERVE_BINARY) +
                            " bench --preset tiny --compute roofline --backends local,colocated"
                            " --input-lens 64 --output-lens 8 --rates 2 --cell-seconds 1"
                            " --min-prompts 6 --max-prompts 6 --pool-gib 0.05 --seed 3"
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
std::string* ColocatedBenchTest::dir_ = nullptr;
int ColocatedBenchTest::exit_code_ = -1;

TEST_F(ColocatedBenchTest, ColocatedServesVerifiedTokensAndMovesNoKv) {
  ASSERT_EQ(exit_code_, 0) << ReadFile(*dir_ + ".log");
  const nlohmann::json j = ReadJson(*dir_ + "/colocated_in64_out8_rate2.json");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["completed"].get<int>(), 6);
  EXPECT_EQ(j["failed"].get<int>(), 0);
  EXPECT_TRUE(j["verified"].get<bool>());
  EXPECT_EQ(j["verify_mismatches"].get<int>(), 0);
  ASSERT_EQ(j["server_timelines"].size(), 6u);
  std::set<std::string> workers;
  for (const nlohmann::json& t : j["server_timelines"]) {
    EXPECT_EQ(t["kv_bytes"].get<uint64_t>(), 0u) << t.dump();
    EXPECT_EQ(t["transfer_backend"], "inproc") << t.dump();
    EXPECT_EQ(t["prefill_worker"], t["decode_worker"]) << t.dump();
    workers.insert(t["decode_worker"].get<std::string>());
  }
  for (const std::string& w : workers) EXPECT_TRUE(w == "colocated-0" || w == "colocated-1") << w;
  // The same load as local's cell: the same seed, so the same prompts at the same times.
  const nlohmann::json local = ReadJson(*dir_ + "/local_in64_out8_rate2.json");
  ASSERT_TRUE(local.is_object());
  EXPECT_EQ(j.value("seed", nlohmann::json()), local.value("seed", nlohmann::json()));
  EXPECT_EQ(j.value("input_lens", nlohmann::json()), local.value("input_lens", nlohmann::json()));
  EXPECT_EQ(j.value("output_lens", nlohmann::json()), local.value("output_lens", nlohmann::json()));
}

TEST_F(ColocatedBenchTest, UsageCountsBothEnginesOfEachColocatedWorkerAndNoTransferBaseline) {
  ASSERT_EQ(exit_code_, 0);
  const nlohmann::json inputs = ReadJson(*dir_ + "/report-inputs.json");
  ASSERT_TRUE(inputs.is_object());
  ASSERT_EQ(inputs["runs"].size(), 2u);
  const nlohmann::json& run = inputs["runs"][1];
  ASSERT_EQ(run["backend"], "colocated");
  std::set<std::string> processes, engines;
  for (const nlohmann::json& p : run["usage"]["processes"]) processes.insert(p["name"]);
  EXPECT_EQ(processes,
            (std::set<std::string>{"router", "colocated-0", "colocated-1", "loadgen"}));
  uint64_t prefill_batches = 0, decode_steps = 0;
  for (const nlohmann::json& e : run["usage"]["engines"]) {
    const std::string name = e["worker"];
    engines.insert(name);
    EXPECT_EQ(e["decode"].get<bool>(), name.ends_with(" decode")) << name;
    (e["decode"].get<bool>() ? decode_steps : prefill_batches) += e["steps"].get<uint64_t>();
  }
  EXPECT_EQ(engines, (std::set<std::string>{"colocated-0 prefill", "colocated-0 decode",
                                            "colocated-1 prefill", "colocated-1 decode"}));
  EXPECT_GE(prefill_batches, 1u);
  EXPECT_GE(decode_steps, 7u);  // 8 output tokens: the first from prefill, 7 decode steps
  // Only local's KV was measured by the microbenchmark: colocated moves none.
  ASSERT_EQ(inputs["transfer_baselines"].size(), 1u);
  EXPECT_EQ(inputs["transfer_baselines"][0]["backend"], "local");
  EXPECT_EQ(inputs["baseline"], "local");
}

TEST_F(ColocatedBenchTest, ReportSetsLocalAgainstColocated) {
  ASSERT_EQ(exit_code_, 0);
  const std::string md = ReadFile(*dir_ + "/report.md");
  EXPECT_NE(md.find("**P/D against colocated**"), std::string::npos) << md;
  const size_t section = md.find("## P/D against colocated");
  ASSERT_NE(section, std::string::npos);
  EXPECT_NE(md.find("2 colocated workers (as many devices as the P/D cluster's 1 + 1 workers)"),
            std::string::npos);
  EXPECT_NE(md.find("SLOs: TTFT <= 500 ms, TPOT <= 50 ms (the bench's default"),
            std::string::npos);
  const size_t row = md.find("| local | in64/out8 | 2 | ", section);
  ASSERT_NE(row, std::string::npos) << md;
  const std::string line = md.substr(row, md.find('\n', row) - row);
  EXPECT_NE(line.find("x ["), std::string::npos) << line;  // a ratio with its interval
  EXPECT_NE(line.find("| 6, 6 |"), std::string::npos) << line;

  // The same pair in report-inputs.json and colocated_ratios.csv; goodput as each run's JSON.
  const nlohmann::json inputs = ReadJson(*dir_ + "/report-inputs.json");
  ASSERT_EQ(inputs["colocated_ratios"].size(), 1u);
  const nlohmann::json& pair = inputs["colocated_ratios"][0];
  EXPECT_EQ(pair["pd_backend"], "local");
  const double ratio = pair["ttft_p50_ratio"]["estimate"].get<double>();
  EXPECT_NEAR(ratio,
              pair["pd_ttft_p50_ms"].get<double>() / pair["colocated_ttft_p50_ms"].get<double>(),
              1e-9);
  EXPECT_LE(pair["ttft_p50_ratio"]["lo"].get<double>(), ratio);
  EXPECT_GE(pair["ttft_p50_ratio"]["hi"].get<double>(), ratio);
  const nlohmann::json local = ReadJson(*dir_ + "/local_in64_out8_rate2.json");
  const nlohmann::json colocated = ReadJson(*dir_ + "/colocated_in64_out8_rate2.json");
  EXPECT_NEAR(pair["pd_goodput"].get<double>(), local["request_goodput"].get<double>(), 1e-9);
  EXPECT_NEAR(pair["colocated_goodput"].get<double>(), colocated["request_goodput"].get<double>(),
              1e-9);
  const std::string csv = ReadFile(*dir_ + "/colocated_ratios.csv");
  EXPECT_NE(csv.find("\nlocal,64,8,2,"), std::string::npos) << csv;
}

}  // namespace
