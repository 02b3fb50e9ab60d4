// `pdserve bench --resume`: a sweep killed (SIGKILL) after its first cell, then resumed, ends
// with the same cells, prompts and seeds, and every request the same lengths, as the same sweep
// run without a break; the report is refreshed after every cell, so the killed sweep already
// left one.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/read_file.h"

namespace {

using ::pdserve::testing_util::ReadFile;

const char kSweep[] =
    " bench --preset tiny --compute real --backends local,ucx --input-lens 32 --output-lens 8"
    " --rates 2,8 --cell-seconds 1 --min-prompts 6 --max-prompts 6 --pool-gib 0.05"
    " --transfer-baseline false"
    " --seed 7";

nlohmann::json Inputs(const std::string& dir) {
  const nlohmann::json j =
      nlohmann::json::parse(ReadFile(dir + "/report-inputs.json"), nullptr, false);
  return j.is_object() ? j : nlohmann::json::object();
}

// Per run: prompts, seed, and its requests' input and output lengths.
using Key = std::tuple<std::string, int, int, std::string>;
std::map<Key, nlohmann::json> Runs(const std::string& dir) {
  std::map<Key, nlohmann::json> out;
  for (const nlohmann::json& r : Inputs(dir).value("runs", nlohmann::json::array())) {
    const nlohmann::json result = nlohmann::json::parse(
        ReadFile(dir + "/" + r.value("result_file", "")), nullptr, false);
    out[{r.value("backend", ""), r.value("input_len", 0), r.value("output_len", 0),
         r.value("request_rate", "")}] = {
        {"prompts", r.value("prompts", 0)},
        {"seed", r.value("seed", 0)},
        {"error", r.value("error", "")},
        {"input_lens", result.is_discarded() ? nlohmann::json() : result["input_lens"]},
        {"output_lens", result.is_discarded() ? nlohmann::json() : result["output_lens"]}};
  }
  return out;
}

TEST(ServingBenchResumeTest, KilledSweepResumedEqualsAnUninterruptedOne) {
  const std::string base = testing::TempDir() + "/pdserve-bench-resume-" + std::to_string(getpid());
  const std::string whole = base + "-whole", cut = base + "-cut";
  std::filesystem::remove_all(whole);
  std::filesystem::remove_all(cut);
  ASSERT_EQ(std::system((std::string(PDSERVE_BINARY) + kSweep + " --result-dir " + whole +
                         " > " + whole + ".log 2>&1")
                            .c_str()),
            0)
      << ReadFile(whole + ".log");

  // The same sweep in the background, killed as soon as its first cell is in the report.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string cmd =
        std::string("exec ") + PDSERVE_BINARY + kSweep + " --result-dir " + cut + " > " + cut +
        ".log 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    _exit(127);
  }
  size_t seen = 0;
  for (int i = 0; i < 3000 && seen == 0; ++i) {  // 60 s at most
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    seen = Inputs(cut).value("runs", nlohmann::json::array()).size();
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_GE(seen, 1u) << ReadFile(cut + ".log");
  ASSERT_LT(seen, 4u) << "the sweep ended before it was killed";
  EXPECT_NE(ReadFile(cut + "/report.md").find("partial:"), std::string::npos);

  ASSERT_EQ(std::system((std::string(PDSERVE_BINARY) + " bench --resume " + cut + " >> " + cut +
                         ".log 2>&1")
                            .c_str()),
            0)
      << ReadFile(cut + ".log");
  const std::string log = ReadFile(cut + ".log");
  EXPECT_NE(log.find("resuming " + cut), std::string::npos) << log;
  EXPECT_NE(log.find("ETA"), std::string::npos) << log;
  // The cell that finished before the kill is not run again.
  const std::string after = log.substr(std::min(log.size(), log.find("resuming " + cut)));
  EXPECT_EQ(after.find("[local 1/2]"), std::string::npos) << after;

  const std::map<Key, nlohmann::json> a = Runs(whole), b = Runs(cut);
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  for (const auto& [key, run] : a) {
    ASSERT_TRUE(b.count(key)) << std::get<0>(key) << " rate " << std::get<3>(key);
    EXPECT_EQ(b.at(key), run) << std::get<0>(key) << " rate " << std::get<3>(key);
    EXPECT_EQ(run["error"], "");
  }
  EXPECT_EQ(ReadFile(cut + "/report.md").find("partial:"), std::string::npos);
  std::filesystem::remove_all(whole);
  std::filesystem::remove_all(cut);
  std::filesystem::remove(whole + ".log");
  std::filesystem::remove(cut + ".log");
}

}  // namespace
