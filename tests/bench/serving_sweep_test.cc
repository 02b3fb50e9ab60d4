#include "bench/serving_sweep.h"

#include <cmath>
#include <string>
#include <vector>

#include "bench/serving_backends.h"
#include "gtest/gtest.h"

namespace pdserve::bench {
namespace {

TEST(ServingSweepTest, KnownBackendsPass) {
  ServingBenchOptions o;
  o.backends = {"local", "ucx", "ucx-posix", "ucx-tcp", "ucx-cma"};
  EXPECT_TRUE(ValidateServingOptions(o).ok());
}

TEST(ServingSweepTest, ColocatedIsADefaultBackendAfterTheTransfersOnBothDevices) {
  ServingBenchOptions o;
  EXPECT_EQ(o.backends,
            (std::vector<std::string>{"local", "ucx-posix", "ucx-tcp", "colocated"}));
  EXPECT_TRUE(ValidateServingOptions(o).ok());
  o.device = "cuda";
  o.compute = "cuda";
  o.backends = {"cuda-ipc", "colocated"};
  EXPECT_TRUE(ValidateServingOptions(o).ok());
  EXPECT_EQ(BackendLabel("colocated", "cuda"), "colocated");
}

TEST(ServingSweepTest, TransferBaselineIsTheFirstBackendThatIsNotColocated) {
  EXPECT_EQ(TransferBaselineLabel({"colocated", "ucx-tcp", "local"}, "cpu"), "ucx-tcp");
  EXPECT_EQ(TransferBaselineLabel({"local", "colocated"}, "cpu"), "local");
  EXPECT_EQ(TransferBaselineLabel({"colocated", "local"}, "cuda"), "cuda-ipc");
  EXPECT_EQ(TransferBaselineLabel({"colocated"}, "cpu"), "colocated");
}

TEST(ServingSweepTest, ColocatedHasAsManyWorkersAsThePdCluster) {
  cluster::ClusterOptions c;
  c.num_prefill = 2;
  c.num_decode = 3;
  ASSERT_TRUE(ConfigureBackend("colocated", "cpu", c).ok());
  EXPECT_EQ(c.num_colocated, 5);
  EXPECT_TRUE(c.env.empty());
}

TEST(ServingSweepTest, UnknownBackendIsOneLineNamingItBeforeAnythingRuns) {
  ServingBenchOptions o;
  o.backends = {"local", "ucx-posix", "nixl"};
  const absl::Status s = ValidateServingOptions(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'nixl'"), std::string::npos) << s;
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << s;
}

TEST(ServingSweepTest, UnknownUcxTransportIsRefused) {
  ServingBenchOptions o;
  o.backends = {"ucx-tpc"};
  const absl::Status s = ValidateServingOptions(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'tpc'"), std::string::npos) << s;
}

TEST(ServingSweepTest, GpuOnlyBackendsNeedTheGpu) {
  ServingBenchOptions o;
  o.backends = {"cuda-ipc"};
  EXPECT_FALSE(ValidateServingOptions(o).ok());
  o.device = "cuda";
  o.compute = "cuda";
  EXPECT_TRUE(ValidateServingOptions(o).ok());
}

TEST(ServingSweepTest, BadValuesAreRefused) {
  auto bad = [](auto change) {
    ServingBenchOptions o;
    change(o);
    return !ValidateServingOptions(o).ok();
  };
  EXPECT_TRUE(bad([](ServingBenchOptions& o) { o.backends = {"local", "local"}; }));
  EXPECT_TRUE(bad([](ServingBenchOptions& o) { o.preset = "no-such-model"; }));
  EXPECT_TRUE(bad([](ServingBenchOptions& o) { o.gpu = "no-such-gpu"; }));
  EXPECT_TRUE(bad([](ServingBenchOptions& o) { o.rates = {4, 0}; }));
  EXPECT_TRUE(bad([](ServingBenchOptions& o) { o.input_lens = {128, -1}; }));
  EXPECT_TRUE(bad([](ServingBenchOptions& o) { o.compute = "cuda"; }));  // on the CPU
  EXPECT_TRUE(bad([](ServingBenchOptions& o) {
    o.min_prompts = 10;
    o.max_prompts = 5;
  }));
  EXPECT_FALSE(bad([](ServingBenchOptions&) {}));
}

TEST(ServingSweepTest, OptionsRoundTripThroughJson) {
  ServingBenchOptions o;
  o.backends = {"local", "ucx-tcp"};
  o.matrix = "quick";
  o.input_lens = {32, 64};
  o.output_lens = {8};
  o.rates = {2, 8.5};
  o.cell_seconds = 1.5;
  o.min_prompts = 6;
  o.seed = 42;
  o.api = "http";
  o.layout = "block-major";
  o.command_line = "pdserve bench --quick";
  absl::StatusOr<ServingBenchOptions> back = SweepOptionsFromJson(SweepOptionsToJson(o));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->backends, o.backends);
  EXPECT_EQ(back->matrix, "quick");
  EXPECT_EQ(back->input_lens, o.input_lens);
  EXPECT_EQ(back->rates, o.rates);
  EXPECT_EQ(back->cell_seconds, 1.5);
  EXPECT_EQ(back->seed, 42u);
  EXPECT_EQ(back->api, "http");
  EXPECT_EQ(back->layout, "block-major");
  EXPECT_EQ(back->command_line, o.command_line);
  EXPECT_EQ(SweepOptionsFromJson(nlohmann::json()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ServingSweepTest, FindRunMatchesBackendAndCell) {
  std::vector<ServingRun> runs = {
      {.backend = "local", .input_len = 128, .output_len = 64, .request_rate = 4},
      {.backend = "ucx-tcp", .input_len = 128, .output_len = 64, .request_rate = 4}};
  const CellPlan cell{.input_len = 128, .output_len = 64, .rate = 4};
  EXPECT_EQ(FindRun(runs, "ucx-tcp", cell), &runs[1]);
  EXPECT_EQ(FindRun(runs, "ucx-posix", cell), nullptr);
  EXPECT_EQ(FindRun(runs, "local", CellPlan{.input_len = 128, .output_len = 64, .rate = 16}),
            nullptr);
}

TEST(ServingSweepTest, EtaFollowsThePlanThenTheMeasuredPace) {
  const std::vector<CellPlan> cells = {{.expected_s = 10}, {.expected_s = 20}, {.expected_s = 30}};
  SweepProgress p(cells, 2);  // 120 s of cells, 2 set-ups of 20 s (the guess)
  EXPECT_EQ(p.total(), 6);
  EXPECT_DOUBLE_EQ(p.RemainingSeconds(), 120 + 2 * 20);
  p.BackendSetUp(5);
  // The first cell took twice its plan: the 110 s left are expected to take 220 s; one set-up
  // left, as long as the one measured.
  p.CellDone(cells[0], 20);
  EXPECT_EQ(p.done(), 1);
  EXPECT_DOUBLE_EQ(p.RemainingSeconds(), 220 + 5);
  // A restored cell (--resume) counts as done without changing the pace.
  p.CellDone(cells[1], -1);
  EXPECT_DOUBLE_EQ(p.RemainingSeconds(), 180 + 5);
  p.CellDone(cells[2], 30);
  p.BackendSetUp(5);
  // Pace (20 + 30) / (10 + 30) = 1.25 over the second backend's 60 s; no set-up left.
  EXPECT_DOUBLE_EQ(p.RemainingSeconds(), 60 * 1.25);
  EXPECT_NE(p.Line(60).find("3/6 cells"), std::string::npos) << p.Line(60);
}

}  // namespace
}  // namespace pdserve::bench
