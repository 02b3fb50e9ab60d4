#include "bench/serving_analysis.h"

#include <cmath>

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

// A cell whose requests had these TTFTs and KV transfer times (ms), 16 MiB in `ops` each.
ServingRun Cell(const std::string& backend, double rate, const std::vector<double>& ttft_ms,
                const std::vector<double>& transfer_ms, int ops) {
  ServingRun r{.backend = backend, .input_len = 128, .output_len = 64, .request_rate = rate};
  nlohmann::json ttfts = nlohmann::json::array(), errors = nlohmann::json::array(),
                 timelines = nlohmann::json::array();
  for (size_t i = 0; i < ttft_ms.size(); ++i) {
    ttfts.push_back(ttft_ms[i] / 1e3);
    errors.push_back("");
    timelines.push_back(
        {{"transfer_ms", transfer_ms[i]}, {"kv_bytes", 16 << 20}, {"transfer_ops", ops}});
  }
  r.result = {{"ttfts", ttfts},
              {"errors", errors},
              {"server_timelines", timelines},
              {"p99_send_lag_ms", 0.5},
              {"max_send_lag_ms", 1.0}};
  r.usage = Quiet();
  return r;
}

const std::vector<double> kLocalTtft = {50, 52, 49, 51, 50, 48, 53, 51};
const std::vector<double> kLocalXfer = {3.0, 3.1, 2.9, 3.0, 3.2, 2.8, 3.0, 3.1};
const std::vector<double> kTcpTtft = {80, 83, 79, 82, 80, 78, 84, 81};
const std::vector<double> kTcpXfer = {33, 34, 32, 33, 35, 31, 33, 34};

TEST(ServingAnalysisTest, SamplesComeFromSuccessfulRequestsOnly) {
  ServingRun r = Cell("local", 1, {10, 20, 30}, {1, 2, 3}, 8);
  r.result["errors"][1] = "UNAVAILABLE: gone";
  const RequestSamples s = SamplesOf(r.result);
  EXPECT_EQ(s.ttft_ms, (std::vector<double>{10, 30}));
  EXPECT_EQ(s.transfer_ms, (std::vector<double>{1, 3}));
  EXPECT_DOUBLE_EQ(s.mean_kv_bytes, 16 << 20);
  EXPECT_DOUBLE_EQ(s.mean_ops, 8);
}

TEST(ServingAnalysisTest, HeadlineNamesADifferenceAndItsTransportCause) {
  const std::vector<ServingRun> runs = {Cell("local", 1, kLocalTtft, kLocalXfer, 8),
                                        Cell("ucx-tcp", 1, kTcpTtft, kTcpXfer, 1024)};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  const std::vector<Comparison> cmp = CompareBackends(cells, "local");
  ASSERT_EQ(cmp.size(), 1u);
  EXPECT_TRUE(cmp[0].comparable());
  EXPECT_FALSE(cmp[0].ttft.SpansZero());
  EXPECT_NEAR(cmp[0].ttft.estimate, 30.375, 1e-9);
  const std::string h = Headline(cells, cmp, "local");
  EXPECT_NE(h.find("ucx-tcp vs local: mean TTFT higher in 1 and lower in 0 of 1 comparable"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("explained by KV transfer +30.113 ms"), std::string::npos) << h;
  EXPECT_NE(h.find("the same 16.0 MiB (1024 vs 8 ops)"), std::string::npos) << h;
}

TEST(ServingAnalysisTest, TtftDifferenceWithoutTransferDifferenceIsNotBlamedOnTheTransport) {
  const std::vector<ServingRun> runs = {Cell("local", 1, kLocalTtft, kLocalXfer, 8),
                                        Cell("ucx-posix", 1, kTcpTtft, kLocalXfer, 8)};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  const std::string h = Headline(cells, CompareBackends(cells, "local"), "local");
  EXPECT_NE(h.find("not explained by the KV transfer"), std::string::npos) << h;
}

TEST(ServingAnalysisTest, SmallTransferDifferenceDoesNotExplainALargeTtftDifference) {
  std::vector<double> slightly_slower = kLocalXfer;
  for (double& x : slightly_slower) x += 1.0;  // +1 ms, well beyond noise; TTFT is +30 ms
  const std::vector<ServingRun> runs = {Cell("local", 1, kLocalTtft, kLocalXfer, 8),
                                        Cell("ucx-posix", 1, kTcpTtft, slightly_slower, 8)};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  const std::vector<Comparison> cmp = CompareBackends(cells, "local");
  ASSERT_EQ(cmp.size(), 1u);
  EXPECT_FALSE(cmp[0].transfer.SpansZero());
  EXPECT_EQ(cmp[0].Cause().rfind("not explained by the KV transfer (KV transfer +1.000 ms", 0), 0u)
      << cmp[0].Cause();
}

TEST(ServingAnalysisTest, NoisyTransferDifferenceDoesNotExplainATtftDifference) {
  // One 250 ms outlier: the mean is +28 ms but a third of resamples miss it.
  const std::vector<double> outlier = {0, 0, 0, 0, 0, 0, 0, 250};
  const std::vector<ServingRun> runs = {Cell("local", 1, kLocalTtft, kLocalXfer, 8),
                                        Cell("ucx-posix", 1, kTcpTtft, outlier, 8)};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  const std::vector<Comparison> cmp = CompareBackends(cells, "local");
  ASSERT_EQ(cmp.size(), 1u);
  EXPECT_TRUE(cmp[0].transfer.SpansZero());
  EXPECT_EQ(cmp[0].Cause().rfind("not explained by the KV transfer", 0), 0u) << cmp[0].Cause();
}

TEST(ServingAnalysisTest, OverlappingCellsAreNoDifferenceWithinNoise) {
  std::vector<double> shuffled = {51, 50, 53, 48, 50, 51, 49, 52};
  const std::vector<ServingRun> runs = {Cell("local", 1, kLocalTtft, kLocalXfer, 8),
                                        Cell("ucx-posix", 1, shuffled, kLocalXfer, 8)};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  EXPECT_EQ(Headline(cells, CompareBackends(cells, "local"), "local"),
            "ucx-posix vs local: no difference in mean TTFT within noise in any of 1 "
            "comparable cells (every 95% bootstrap interval spans zero)");
}

TEST(ServingAnalysisTest, HostBoundCellsStayOutOfTheHeadline) {
  std::vector<ServingRun> runs = {Cell("local", 1, kLocalTtft, kLocalXfer, 8),
                                  Cell("ucx-tcp", 1, kTcpTtft, kTcpXfer, 1024)};
  runs[1].usage.processes[0].cpu_s = 9.5;  // decode-0 at 0.95 of a core
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  EXPECT_TRUE(cells[1].verdict.host_bound);
  EXPECT_EQ(Headline(cells, CompareBackends(cells, "local"), "local"),
            "ucx-tcp vs local: no comparison (1 cell pairs, none where both cells are verified, "
            "not host-bound and completed 2 or more requests) (kept out of this line: 1 "
            "host-bound of 2 cells)");
}

TEST(ServingAnalysisTest, ModelledCellsWithoutEngineCountersAreUnverified) {
  std::vector<ServingRun> runs = {Cell("local", 1, kLocalTtft, kLocalXfer, 8),
                                  Cell("ucx-tcp", 1, kTcpTtft, kTcpXfer, 1024)};
  runs[1].usage.modelled = true;
  runs[1].usage.engines.clear();  // the engines left EngineCounters at 0
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  EXPECT_FALSE(cells[1].verdict.host_bound);
  EXPECT_TRUE(cells[1].verdict.unverified);
  EXPECT_FALSE(cells[1].usable());
  EXPECT_EQ(Headline(cells, CompareBackends(cells, "local"), "local"),
            "ucx-tcp vs local: no comparison (1 cell pairs, none where both cells are verified, "
            "not host-bound and completed 2 or more requests) (kept out of this line: 1 "
            "unverified of 2 cells)");
}

TEST(ServingAnalysisTest, TtftModelCheckSaysWhenTheEnginesDidNotReport) {
  std::vector<ServingRun> runs = {Cell("local", 1, kLocalTtft, kLocalXfer, 8)};
  std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  EXPECT_EQ(TtftModelSummary(cells, 0.15),
            "not checked: none of the 1 usable cells at 1 req/s has the modelled prefill, "
            "modelled first step and decode join reported by the engines");
  runs[0].result["ttft_to_model_ratio"] = 1.1;
  runs.push_back(Cell("ucx-tcp", 1, kTcpTtft, kTcpXfer, 8));
  runs[1].result["ttft_to_model_ratio"] = 1.2;
  cells = AnalyseCells(runs, {});
  EXPECT_EQ(TtftModelSummary(cells, 0.15),
            "mean TTFT within 15% of the model in 1 of 2 usable cells at 1 req/s (ratios 1.10 - "
            "1.20)");
}

TEST(ServingAnalysisTest, TransferBaselineRatioUsesTheSameBackendAndPromptLength) {
  std::vector<ServingRun> runs = {Cell("local", 1, kLocalTtft, kLocalXfer, 8),
                                  Cell("ucx-tcp", 1, kTcpTtft, kTcpXfer, 8)};
  runs[0].result["mean_kv_transfer_ms"] = 3.0;
  runs[1].result["mean_kv_transfer_ms"] = 32.0;
  const std::vector<RequestTransferBaseline> micro = {
      // The cold median is the reference; the means (pulled up by slow outliers) are not.
      {.backend = "local", .input_len = 128, .mean_ms = 9.0, .p50_ms = 2.5},
      {.backend = "ucx-tcp", .input_len = 128, .mean_ms = 90.0, .p50_ms = 20.0},
      {.backend = "ucx-tcp", .input_len = 2048, .mean_ms = 1.0, .p50_ms = 1.0}};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  EXPECT_EQ(BaselineFor(runs[1], micro), &micro[1]);
  EXPECT_EQ(TransferBaselineSummary(cells, micro, 1.5),
            "serving mean / microbenchmark cold median KV transfer time within 1.5x in 1 of 2 "
            "usable cells "
            "(median 1.40x, max 1.60x)");
}

}  // namespace
}  // namespace pdserve::bench
