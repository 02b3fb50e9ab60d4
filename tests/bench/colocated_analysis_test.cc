#include "bench/colocated_analysis.h"

#include <cmath>

#include "bench/capacity.h"
#include "gtest/gtest.h"

namespace pdserve::bench {
namespace {

CellUsage Quiet() {
  CellUsage u;
  u.measured = true;
  u.wall_s = 10;
  u.allowed_cpus = 2;
  u.host_busy_cpus = 0.5;
  u.processes = {{"decode-0", 2.0}};
  u.engines = {{.worker = "decode-0", .decode = true, .steps = 100, .modelled_us = 1000}};
  return u;
}

// A cell of in128/out9 whose requests had these TTFTs and TPOTs (ms), over `duration_s`.
ServingRun Cell(const std::string& backend, double rate, const std::vector<double>& ttft_ms,
                const std::vector<double>& tpot_ms, double duration_s = 8) {
  ServingRun r{.backend = backend, .input_len = 128, .output_len = 9, .request_rate = rate};
  nlohmann::json ttfts = nlohmann::json::array(), errors = nlohmann::json::array(),
                 latencies = nlohmann::json::array(), outputs = nlohmann::json::array();
  for (size_t i = 0; i < ttft_ms.size(); ++i) {
    ttfts.push_back(ttft_ms[i] / 1e3);
    latencies.push_back((ttft_ms[i] + 8 * tpot_ms[i]) / 1e3);  // 9 tokens: 8 gaps
    outputs.push_back(9);
    errors.push_back("");
  }
  r.result = {{"ttfts", ttfts},         {"errors", errors},
              {"latencies", latencies}, {"output_lens", outputs},
              {"duration", duration_s}, {"p99_send_lag_ms", 0.5},
              {"max_send_lag_ms", 1.0}};
  r.usage = Quiet();
  return r;
}

const std::vector<double> kColocatedTtft = {40, 42, 39, 41, 40, 38, 43, 41};
const std::vector<double> kTpot = {10, 10, 10, 10, 10, 10, 10, 10};

std::vector<double> Scaled(const std::vector<double>& v, double by) {
  std::vector<double> out = v;
  for (double& x : out) x *= by;
  return out;
}

TEST(ColocatedAnalysisTest, TpotSamplesAreTheGapsAfterTheFirstToken) {
  const RequestSamples s = SamplesOf(Cell("local", 1, {20, 30}, {5, 7}).result);
  ASSERT_EQ(s.tpot_ms.size(), 2u);
  EXPECT_NEAR(s.tpot_ms[0], 5, 1e-9);
  EXPECT_NEAR(s.tpot_ms[1], 7, 1e-9);
}

TEST(ColocatedAnalysisTest, GoodputCountsSuccessfulRequestsWithinEverySlo) {
  // TTFT 600 misses 500 ms; TPOT 60 misses 50 ms; the failed one is not counted at all.
  ServingRun r = Cell("local", 1, {100, 600, 100, 100, 100}, {10, 10, 60, 10, 10}, 4);
  r.result["errors"][4] = "UNAVAILABLE: gone";
  const CellGoodput g = GoodputOf(r.result, SweepSlos({}));
  EXPECT_EQ(g.good, 2);
  EXPECT_EQ(g.completed, 4);
  EXPECT_DOUBLE_EQ(g.PerSecond(), 0.5);
  EXPECT_DOUBLE_EQ(g.Attainment(), 0.5);
  // Only a TTFT SLO of 50 ms: none of them.
  EXPECT_EQ(GoodputOf(r.result, SweepSlos({"ttft:50"})).good, 0);
  EXPECT_TRUE(std::isnan(GoodputOf(nlohmann::json::object(), SweepSlos({})).PerSecond()));
}

TEST(ColocatedAnalysisTest, RatiosArePdOverColocatedPerCell) {
  const std::vector<ServingRun> runs = {
      Cell("local", 1, Scaled(kColocatedTtft, 1.5), kTpot),
      Cell("ucx-tcp", 1, Scaled(kColocatedTtft, 2.0), Scaled(kTpot, 1.2)),
      Cell("colocated", 1, kColocatedTtft, kTpot),
  };
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  const std::vector<ColocatedComparison> cmp = CompareWithColocated(cells, SweepSlos({}));
  ASSERT_EQ(cmp.size(), 2u);
  EXPECT_EQ(cmp[0].pd->run->backend, "local");
  EXPECT_EQ(cmp[0].colocated->run->backend, "colocated");
  EXPECT_TRUE(cmp[0].comparable());
  EXPECT_NEAR(cmp[0].ttft_p50.estimate, 1.5, 1e-12);
  EXPECT_NEAR(cmp[0].ttft_mean.estimate, 1.5, 1e-12);
  EXPECT_NEAR(cmp[0].tpot_p50.estimate, 1.0, 1e-12);
  EXPECT_GT(cmp[0].ttft_p50.lo, 1.0);  // the spread is +-2 ms of 40: 1.5x is beyond noise
  EXPECT_LE(cmp[0].ttft_p50.lo, 1.5);
  EXPECT_GE(cmp[0].ttft_p50.hi, 1.5);
  EXPECT_NEAR(cmp[1].ttft_p50.estimate, 2.0, 1e-12);
  EXPECT_NEAR(cmp[1].tpot_p50.estimate, 1.2, 1e-12);
  EXPECT_EQ(cmp[0].pd_goodput.good, 8);
  EXPECT_DOUBLE_EQ(cmp[0].colocated_goodput.PerSecond(), 1.0);  // 8 of 8 in 8 s
  // Colocated is no transport: the transfer comparisons do not see it.
  EXPECT_EQ(CompareBackends(cells, "local").size(), 1u);
  EXPECT_EQ(Headline(cells, CompareBackends(cells, "local"), "local").find("colocated"),
            std::string::npos);
}

TEST(ColocatedAnalysisTest, SummaryUsesComparableCellsAtOneRequestPerSecond) {
  std::vector<ServingRun> runs = {
      Cell("local", 1, Scaled(kColocatedTtft, 1.5), kTpot),
      Cell("local", 4, Scaled(kColocatedTtft, 3.0), kTpot),
      Cell("ucx-tcp", 1, Scaled(kColocatedTtft, 2.0), kTpot),
      Cell("colocated", 1, kColocatedTtft, kTpot),
      Cell("colocated", 4, kColocatedTtft, kTpot),
  };
  runs[2].usage.processes[0].cpu_s = 9.5;  // ucx-tcp's decode-0 at 0.95 of a core: host-bound
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  const std::vector<ColocatedComparison> cmp = CompareWithColocated(cells, SweepSlos({}));
  ASSERT_EQ(cmp.size(), 3u);
  EXPECT_EQ(SummaryRate(cmp), 1.0);
  EXPECT_FALSE(cmp[2].comparable());
  EXPECT_EQ(cmp[2].Exclusion(), "P/D cell host-bound");
  const std::string s = ColocatedSummary(cmp);
  EXPECT_EQ(s, "P/D TTFT p50 / colocated at 1 req/s: local " + FormatRatio(cmp[0].ttft_p50) +
                   " in128/out9 (TPOT p50 1.00x) (left out: ucx-tcp in128/out9 (P/D cell "
                   "host-bound))");
  EXPECT_EQ(FormatRatio(cmp[0].ttft_p50).rfind("1.50x [", 0), 0u);
}

TEST(ColocatedAnalysisTest, SummaryFallsBackToTheLowestRateAndSaysWhenNothingPairs) {
  const std::vector<ServingRun> runs = {Cell("local", 4, kColocatedTtft, kTpot),
                                        Cell("local", 2, kColocatedTtft, kTpot),
                                        Cell("colocated", 4, kColocatedTtft, kTpot),
                                        Cell("colocated", 2, kColocatedTtft, kTpot)};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  const std::vector<ColocatedComparison> cmp = CompareWithColocated(cells, SweepSlos({}));
  EXPECT_EQ(SummaryRate(cmp), 2.0);
  EXPECT_EQ(ColocatedSummary(cmp).rfind("P/D TTFT p50 / colocated at 2 req/s: local 1.00x", 0),
            0u);
  const std::vector<CellAnalysis> alone = AnalyseCells({runs[0]}, {});
  EXPECT_EQ(ColocatedSummary(CompareWithColocated(alone, SweepSlos({}))),
            "no comparison: runs of colocated and of a P/D backend in the same cells are needed");
}

TEST(ColocatedAnalysisTest, FailedCellsArePairedWithoutRatios) {
  std::vector<ServingRun> runs = {Cell("local", 1, kColocatedTtft, kTpot),
                                  Cell("colocated", 1, {}, {})};
  runs[1].error = "cluster did not start: boom";
  runs[1].result = nlohmann::json();
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  const std::vector<ColocatedComparison> cmp = CompareWithColocated(cells, SweepSlos({}));
  ASSERT_EQ(cmp.size(), 1u);
  EXPECT_FALSE(cmp[0].ttft_p50.Valid());
  EXPECT_EQ(cmp[0].Exclusion(), "colocated cell failed");
  const std::string table = ColocatedTable(cmp);
  EXPECT_NE(table.find("| local | in128/out9 | 1 | 40.50 / - | - | - | - | 1.000 / - | 100% / - | "
                       "8, 0 | excluded: colocated cell failed |"),
            std::string::npos)
      << table;
}

TEST(ColocatedAnalysisTest, CsvAndJsonCarryTheSameNumbers) {
  const std::vector<ServingRun> runs = {Cell("local", 1, Scaled(kColocatedTtft, 1.5), kTpot),
                                        Cell("colocated", 1, kColocatedTtft, kTpot)};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  const std::vector<ColocatedComparison> cmp = CompareWithColocated(cells, SweepSlos({}));
  const nlohmann::json j = ColocatedJson(cmp, SweepSlos({}));
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["pd_backend"], "local");
  EXPECT_EQ(j[0]["request_rate"], "1");
  EXPECT_DOUBLE_EQ(j[0]["ttft_p50_ratio"]["estimate"].get<double>(), cmp[0].ttft_p50.estimate);
  EXPECT_DOUBLE_EQ(j[0]["ttft_p50_ratio"]["lo"].get<double>(), cmp[0].ttft_p50.lo);
  EXPECT_DOUBLE_EQ(j[0]["pd_goodput"].get<double>(), 1.0);
  EXPECT_EQ(j[0]["slos"], "TTFT <= 500 ms, TPOT <= 50 ms");
  EXPECT_TRUE(j[0]["comparable"].get<bool>());
  const std::string csv = ColocatedCsv(cmp, SweepSlos({}));
  EXPECT_EQ(csv.rfind("pd_backend,input_len,output_len,request_rate,pd_ttft_p50_ms,", 0), 0u);
  EXPECT_NE(csv.find("\nlocal,128,9,1,60.75,40.5,1.5,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",1,1,1,1,\"TTFT <= 500 ms, TPOT <= 50 ms\",1,\"\"\n"), std::string::npos)
      << csv;
}

}  // namespace
}  // namespace pdserve::bench
