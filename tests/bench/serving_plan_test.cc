#include "bench/serving_plan.h"

#include <cmath>

#include "gtest/gtest.h"

namespace pdserve::bench {
namespace {

TEST(ServingPlanTest, FullIsTheSeedMatrixAndTheDefault) {
  for (const char* name : {"full", "default"}) {
    absl::StatusOr<SweepPlan> p = ResolveSweep(name, false, {});
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->name, "full");
    EXPECT_EQ(p->input_lens, (std::vector<int>{128, 512, 2048}));
    EXPECT_EQ(p->output_lens, (std::vector<int>{64, 128, 512}));
    EXPECT_EQ(p->rates, (std::vector<double>{1, 4, 16}));
  }
}

TEST(ServingPlanTest, QuickKeepsEveryRate) {
  absl::StatusOr<SweepPlan> p = ResolveSweep("quick", false, {});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->rates, (std::vector<double>{1, 4, 16}));
  EXPECT_EQ(p->input_lens, (std::vector<int>{128, 2048}));
}

TEST(ServingPlanTest, OverridesReplaceTheMatrixLists) {
  absl::StatusOr<SweepPlan> p =
      ResolveSweep("full", false, {.input_lens = {32}, .rates = {2, 8}, .max_prompts = 10});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->input_lens, (std::vector<int>{32}));
  EXPECT_EQ(p->output_lens, (std::vector<int>{64, 128, 512}));
  EXPECT_EQ(p->rates, (std::vector<double>{2, 8}));
  EXPECT_EQ(p->max_prompts, 10);
  EXPECT_EQ(p->min_prompts, 6);
  EXPECT_EQ(ResolveSweep("huge", false, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ServingPlanTest, PromptsFillTheBudgetLessTheTailWithinBounds) {
  EXPECT_EQ(PromptsFor(1, 12, 2, 6, 48), 10);  // 1 x (12 - 2)
  EXPECT_EQ(PromptsFor(4, 12, 2, 6, 48), 40);
  EXPECT_EQ(PromptsFor(16, 12, 2, 6, 48), 48);  // capped
  EXPECT_EQ(PromptsFor(1, 12, 11, 6, 48), 6);   // window 4 s (a third), then the floor
  EXPECT_EQ(PromptsFor(4, 12, 11, 6, 48), 16);  // a long tail keeps a third of the budget
  EXPECT_EQ(PromptsFor(INFINITY, 12, 1, 6, 48), 48);
}

TEST(ServingPlanTest, LongerOutputsGetFewerPromptsAtTheSameRate) {
  absl::StatusOr<SweepPlan> plan = ResolveSweep("full", false, {});
  ASSERT_TRUE(plan.ok());
  absl::StatusOr<ModelConfig> config = PresetConfig("llama3-8b");
  absl::StatusOr<GpuSpec> gpu = GpuSpecByName("h100");
  ASSERT_TRUE(config.ok() && gpu.ok());
  const RooflineModel model(*config, *gpu);
  const std::vector<CellPlan> cells = PlanCells(*plan, &model);
  ASSERT_EQ(cells.size(), 27u);
  const CellPlan& short_out = cells[0];  // in128/out64 at 1 req/s
  const CellPlan& long_out = cells[6];   // in128/out512 at 1 req/s
  EXPECT_EQ(long_out.output_len, 512);
  EXPECT_GT(long_out.tail_s, short_out.tail_s);
  EXPECT_LT(long_out.prompts, short_out.prompts);
  double total = 0;
  for (const CellPlan& c : cells) total += c.expected_s;
  // The seed matrix at the modelled speed: about 5 minutes a backend.
  EXPECT_LT(total, 330);
  EXPECT_GT(total, 180);
}

TEST(ServingPlanTest, CellsAfterAnOverrunShrinkToTheMeasuredThroughput) {
  const CellPlan previous{.rate = 1, .prompts = 6, .expected_s = 7};
  const CellPlan next{.rate = 4, .prompts = 22, .expected_s = 6.5};
  // On plan (10 s < 1.5 x 7 s): the plan stands.
  EXPECT_EQ(AdaptedPrompts(next, previous,
                           {.wall_s = 10, .request_throughput = 0.6, .mean_e2el_s = 1}, 6, 4),
            22);
  // 30 s for a 7 s plan at 0.2 req/s, 3 s per request: 0.2 x max(6 - 3, 2) = 0.6 -> the floor.
  EXPECT_EQ(AdaptedPrompts(next, previous,
                           {.wall_s = 30, .request_throughput = 0.2, .mean_e2el_s = 3}, 6, 4),
            4);
  // 2 req/s measured, 1 s per request: 2 x 5 = 10 of the 22 planned.
  EXPECT_EQ(AdaptedPrompts(next, previous,
                           {.wall_s = 11, .request_throughput = 2, .mean_e2el_s = 1}, 6, 4),
            10);
  // Never more than planned.
  EXPECT_EQ(AdaptedPrompts(next, previous,
                           {.wall_s = 11, .request_throughput = 50, .mean_e2el_s = 1}, 6, 4),
            22);
}

TEST(ServingPlanTest, DecodePoolHoldsTheLargestCellsWithinTheCap) {
  absl::StatusOr<ModelConfig> config = PresetConfig("llama3-8b");
  ASSERT_TRUE(config.ok());
  // 2048 + 512 tokens = 160 blocks of 2 MiB = 320 MiB a request; 24 of them = 7.5 GiB.
  EXPECT_DOUBLE_EQ(DecodePoolGib(*config, 2048, 512, 24, 2, 8), 7.5);
  EXPECT_DOUBLE_EQ(DecodePoolGib(*config, 2048, 512, 40, 2, 8), 8);
  EXPECT_DOUBLE_EQ(DecodePoolGib(*config, 128, 64, 24, 2, 8), 2);  // never below the floor
}

}  // namespace
}  // namespace pdserve::bench
