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
// Request i starts at `starts_s[i]` (default: 1 s apart) and its transfer ends 50 ms later.
ServingRun Cell(const std::string& backend, double rate, const std::vector<double>& ttft_ms,
                const std::vector<double>& transfer_ms, int ops,
                std::vector<double> starts_s = {}) {
  ServingRun r{.backend = backend, .input_len = 128, .output_len = 64, .request_rate = rate};
  nlohmann::json ttfts = nlohmann::json::array(), errors = nlohmann::json::array(),
                 timelines = nlohmann::json::array(), starts = nlohmann::json::array();
  for (size_t i = 0; i < ttft_ms.size(); ++i) {
    ttfts.push_back(ttft_ms[i] / 1e3);
    errors.push_back("");
    starts.push_back(i < starts_s.size() ? starts_s[i] : static_cast<double>(i));
    const nlohmann::json stages = {{"queue", 0.0},    {"allocate", 0.5},
                                   {"dispatch", 0.5}, {"prefill", 49.0 - transfer_ms[i]},
                                   {"kv_transfer", transfer_ms[i]}};
    timelines.push_back({{"transfer_ms", transfer_ms[i]},
                         {"kv_bytes", 16 << 20},
                         {"transfer_ops", ops},
                         {"prefill_worker", "prefill-0"},
                         {"decode_worker", "decode-0"},
                         {"ttft_stages_ms", stages}});
  }
  r.result = {{"ttfts", ttfts},
              {"errors", errors},
              {"start_times", starts},
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
  // ucx-tcp: the first two requests arrive together and send their KV at the same time: only
  // the other six (33 ms on average) are held to the microbenchmark.
  const std::vector<double> tcp_xfer = {60, 64, 33, 34, 32, 33, 35, 31};
  std::vector<ServingRun> runs = {
      Cell("local", 1, kLocalTtft, kLocalXfer, 8),
      Cell("ucx-tcp", 1, kTcpTtft, tcp_xfer, 8, {0, 0.01, 2, 3, 4, 5, 6, 7})};
  runs[0].result["mean_kv_transfer_ms"] = 3.0125;
  runs[1].result["mean_kv_transfer_ms"] = 40.25;
  const std::vector<RequestTransferBaseline> micro = {
      // The cold median is the reference; the means (pulled up by slow outliers) are not.
      {.backend = "local", .input_len = 128, .mean_ms = 9.0, .p50_ms = 2.5},
      {.backend = "ucx-tcp", .input_len = 128, .mean_ms = 90.0, .p50_ms = 20.0},
      {.backend = "ucx-tcp", .input_len = 2048, .mean_ms = 1.0, .p50_ms = 1.0}};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  EXPECT_EQ(BaselineFor(runs[1], micro), &micro[1]);
  EXPECT_EQ(cells[1].samples.transfers_placed, 8u);
  EXPECT_EQ(cells[1].samples.transfer_alone_ms, (std::vector<double>{33, 34, 32, 33, 35, 31}));
  EXPECT_DOUBLE_EQ(AloneTransferMean(cells[1].samples), 33.0);
  EXPECT_EQ(TransferBaselineSummary(cells, micro, 1.5),
            "serving / microbenchmark cold median KV transfer time, transfers that ran alone (as "
            "the microbenchmark's do): within 1.5x in 1 of 2 usable cells (median 1.43x, max "
            "1.65x); at 1 and 4 req/s within 1.5x in 1 of 2 usable cells (median 1.43x, max "
            "1.65x). Every transfer, including the 2 of 16 that shared a worker with another: "
            "within 1.5x in 1 of 2 usable cells (median 1.61x, max 2.01x)");
}

TEST(ServingAnalysisTest, ACellWithTooFewTransfersAloneIsNotHeldToTheMicrobenchmark) {
  // Every request arrives with another: no transfer ran alone.
  std::vector<ServingRun> runs = {
      Cell("local", 16, {50, 50, 50, 50}, {3, 3, 3, 3}, 8, {0, 0.001, 1, 1.001})};
  runs[0].result["mean_kv_transfer_ms"] = 3.0;
  const std::vector<RequestTransferBaseline> micro = {
      {.backend = "local", .input_len = 128, .mean_ms = 2.5, .p50_ms = 2.5}};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  EXPECT_TRUE(cells[0].samples.transfer_alone_ms.empty());
  EXPECT_TRUE(std::isnan(AloneTransferMean(cells[0].samples)));
  EXPECT_EQ(TransferBaselineSummary(cells, micro, 1.5),
            "serving / microbenchmark cold median KV transfer time, transfers that ran alone (as "
            "the microbenchmark's do): no cell; at 1 and 4 req/s no cell; 1 cells had fewer "
            "than 3 transfers alone. Every transfer, including the 4 of 4 that shared a worker "
            "with another: within 1.5x in 1 of 1 usable cells (median 1.20x, max 1.20x)");
}

TEST(ServingAnalysisTest, TransfersWhoseCopyThreadsWaitedForACoreAreNotHeldToTheMicrobenchmark) {
  // Eight transfers alone; two of them 10 ms long, of which their copy threads waited 6 and
  // 3.6 ms for a core (0.6 and 0.36 of their time: over the microbenchmark's 0.1 by more than a
  // quarter, so the host's other work, left out), and one 3 ms transfer that waited 1 ms
  // (0.33: kept).
  std::vector<ServingRun> runs = {
      Cell("local", 16, kLocalTtft, {3.0, 10.0, 3.0, 10.0, 3.0, 3.0, 3.0, 3.0}, 8)};
  runs[0].result["server_timelines"][1]["transfer_copy_wait_ms"] = 6.0;
  runs[0].result["server_timelines"][3]["transfer_copy_wait_ms"] = 3.6;
  runs[0].result["server_timelines"][4]["transfer_copy_wait_ms"] = 1.0;
  runs[0].result["mean_kv_transfer_ms"] = 4.75;
  const std::vector<RequestTransferBaseline> micro = {
      {.backend = "local", .input_len = 128, .mean_ms = 2.5, .p50_ms = 2.5,
       .cold_wait_share = {0.05, 0.1, 0.2}}};
  const std::vector<CellAnalysis> cells = AnalyseCells(runs, {});
  EXPECT_EQ(cells[0].samples.transfers_placed, 8u);
  EXPECT_EQ(cells[0].samples.transfer_alone_ms.size(), 8u);
  EXPECT_DOUBLE_EQ(micro[0].WaitShare(), 0.1);
  EXPECT_EQ(StarvedTransfers(cells[0].samples, micro[0].WaitShare()), 2u);
  EXPECT_DOUBLE_EQ(AloneTransferMean(cells[0].samples, micro[0].WaitShare()), 3.0);
  EXPECT_DOUBLE_EQ(AloneTransferMean(cells[0].samples), 4.75);
  // Above 1.5x with every transfer alone (1.9x), within it without the starved ones (1.2x):
  // set apart as host-bound.
  const TransferVerdict v = JudgeTransfer(cells[0].samples, micro[0], 1.5);
  EXPECT_DOUBLE_EQ(v.ratio, 1.9);
  EXPECT_TRUE(v.starved_miss);
  EXPECT_EQ(v.starved, 2u);
  // Against a microbenchmark that waited as long, none is starved: a plain miss.
  EXPECT_EQ(StarvedTransfers(cells[0].samples, 0.6), 0u);
  RequestTransferBaseline waited = micro[0];
  waited.cold_wait_share = {0.6};
  EXPECT_FALSE(JudgeTransfer(cells[0].samples, waited, 1.5).starved_miss);
  // Within the target anyway: nothing to set apart.
  EXPECT_FALSE(JudgeTransfer(cells[0].samples, micro[0], 2.0).starved_miss);
  EXPECT_EQ(TransferBaselineSummary(cells, micro, 1.5),
            "serving / microbenchmark cold median KV transfer time, transfers that ran alone (as "
            "the microbenchmark's do): no cell; at 1 and 4 req/s no cell; set apart as "
            "host-bound: 1 cells above it whose transfers alone were within it once those whose "
            "copy threads waited for a core for over 25 points more of their time than the "
            "microbenchmark's were left out. Every transfer, "
            "including the 0 of 8 that shared a worker with another: within 1.5x in 0 of 1 "
            "usable cells (median 1.90x, max 1.90x)");
}

}  // namespace
}  // namespace pdserve::bench
