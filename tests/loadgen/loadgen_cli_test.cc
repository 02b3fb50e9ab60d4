// `pdserve loadgen` as a user runs it (the real binary, against its built-in echo target, whose
// --builtin-fail-every makes failures): exit codes for complete, partly and wholly failed runs,
// failures grouped by cause, vllm command lines accepted, unknown log levels refused.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/e2e_process.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A small run against the built-in target; `extra` adds or overrides flags.
Exit Loadgen(std::vector<std::string> extra) {
  std::vector<std::string> args = {"loadgen",   "--target",        "builtin", "--num-prompts",
                                   "6",         "--random-input-len", "8",    "--random-output-len",
                                   "4",         "--progress",      "off"};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunPdserve(args);
}

TEST(LoadgenExitCodeTest, EveryRequestCompletedExitsZero) {
  const Exit run = Loadgen({});
  EXPECT_EQ(run.code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("Successful requests:                     6"));
  EXPECT_THAT(run.output, Not(HasSubstr("Errors by cause")));
}

TEST(LoadgenExitCodeTest, AllFailedExitsTwoWithOneLinePerCause) {
  const std::string json =
      ::testing::TempDir() + "/" + std::to_string(getpid()) + "-loadgen-all-failed.json";
  const Exit run = Loadgen({"--builtin-fail-every", "1", "--output-json", json});
  EXPECT_EQ(run.code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("Failed requests:                         6"));
  EXPECT_THAT(run.output, HasSubstr(" Errors by cause -"));
  EXPECT_THAT(run.output, HasSubstr("-\n       6  UNAVAILABLE: echo target: injected failure\n="));
  EXPECT_THAT(run.output, HasSubstr("error: 6 of 6 requests failed (1 cause"));
  // The result is still written: a failed run is a result, only not a success.
  std::ifstream in(json);
  ASSERT_TRUE(in.good()) << run.output;
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["completed"], 0);
  EXPECT_EQ(j["failed"], 6);
  EXPECT_EQ(j["error_counts"]["UNAVAILABLE: echo target: injected failure"], 6);
  std::filesystem::remove(json);
  std::filesystem::remove(std::filesystem::path(json).replace_extension(".csv"));
}

TEST(LoadgenExitCodeTest, PartlyFailedExitsOneUnlessFailuresAreAllowed) {
  const Exit some = Loadgen({"--builtin-fail-every", "3"});  // requests 3 and 6 fail
  EXPECT_EQ(some.code, 1) << some.output;
  EXPECT_THAT(some.output, HasSubstr("       2  UNAVAILABLE: echo target: injected failure"));
  EXPECT_THAT(some.output, HasSubstr("error: 2 of 6 requests failed"));
  const Exit allowed = Loadgen({"--builtin-fail-every", "3", "--allow-failures"});
  EXPECT_EQ(allowed.code, 0) << allowed.output;
  EXPECT_THAT(allowed.output, HasSubstr("note: 2 of 6 requests failed"));
}

TEST(LoadgenExitCodeTest, WrongTokensUnderVerifyFailTheRun) {
  const Exit run = Loadgen({"--builtin-wrong-tokens", "--verify", "--allow-failures"});
  EXPECT_EQ(run.code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("verify: 6 requests differ"));
}

TEST(LoadgenExitCodeTest, ARunThatCannotStartExitsThree) {
  const Exit run = Loadgen({"--dataset-name", "sonnet"});
  EXPECT_EQ(run.code, 3) << run.output;
  EXPECT_THAT(run.output, HasSubstr("unknown --dataset-name 'sonnet'"));
}

// A vllm bench serve command line (its flags, its names) runs unchanged, and
// --percentile-metrics picks the table's sections as in vllm.
TEST(LoadgenExitCodeTest, VllmCommandLineRunsWithItsPercentileMetrics) {
  const Exit run = Loadgen({"--dataset-name", "random", "--ignore-eos", "--request-rate", "200",
                            "--burstiness", "1.0", "--max-concurrency", "4", "--seed", "1",
                            "--percentile-metrics", "ttft,e2el", "--metric-percentiles", "99",
                            "--trust-remote-code", "--tokenizer", "x/y", "--disable-tqdm",
                            "--save-detailed", "--temperature", "0"});
  EXPECT_EQ(run.code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("Time to First Token"));
  EXPECT_THAT(run.output, HasSubstr("P99 E2EL (ms):"));
  EXPECT_THAT(run.output, Not(HasSubstr("Inter-token Latency")));
  EXPECT_THAT(run.output, Not(HasSubstr("Time per Output Token")));
}

TEST(LoadgenLogLevelTest, UnknownLogLevelIsAnErrorForEverySubcommand) {
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"loadgen", "--target", "builtin", "--num-prompts", "1"},
        std::vector<std::string>{"model", "info", "--preset", "tiny"}}) {
    std::vector<std::string> args = {"--log-level", "verbose"};
    args.insert(args.end(), command.begin(), command.end());
    const Exit run = RunPdserve(args);
    EXPECT_NE(run.code, 0) << command[0] << ": " << run.output;
    EXPECT_THAT(run.output, HasSubstr("unknown log level 'verbose'")) << command[0];
    EXPECT_THAT(run.output, Not(HasSubstr("Serving Benchmark Result")));  // nothing ran
  }
  const Exit known = RunPdserve({"--log-level", "warn", "model", "info", "--preset", "tiny"});
  EXPECT_EQ(known.code, 0) << known.output;
}

}  // namespace
}  // namespace pdserve::e2e
