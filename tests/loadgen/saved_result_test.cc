// --save-token-ids: the JSON keeps every request's prompt ids, output ids, seed and max_tokens,
// and a saved result re-verifies offline against the model it names.
#include "loadgen/saved_result.h"

#include "common/synthetic_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loadgen/result_json.h"

namespace pdserve::loadgen {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModelConfig Fp32Blocks32() {
  return *ResolveModelConfig({.preset = "tiny", .block_size = 32, .dtype = "fp32"});
}

RequestRecord Record(int index, std::vector<int32_t> prompt, int max_tokens, uint64_t seed,
                     const ModelConfig& model) {
  RequestRecord r;
  r.index = index;
  r.request_id = "lg-" + std::to_string(index);
  r.input_len = static_cast<int>(prompt.size());
  r.max_tokens = max_tokens;
  r.seed = seed;
  r.tokens = model::ReferenceGenerate(prompt, max_tokens, model, seed);
  r.prompt_tokens = std::move(prompt);
  r.output_tokens = static_cast<int>(r.tokens.size());
  r.success = true;
  return r;
}

// Two requests served correctly by a tiny / block 32 / fp32 cluster, saved with token ids.
BenchmarkResult SavedRun() {
  BenchmarkResult result;
  result.options.save_token_ids = true;
  result.model = Fp32Blocks32();
  result.requests = {Record(0, {5, 9, 700}, 4, 11, result.model),
                     Record(1, {1023, 0}, 3, 12, result.model)};
  return result;
}

TEST(SaveTokenIdsTest, JsonHoldsEveryRequestsPromptOutputSeedAndMaxTokens) {
  const BenchmarkResult run = SavedRun();
  const nlohmann::json j = ResultToJson(run);
  ASSERT_TRUE(j.contains("prompt_token_ids"));
  EXPECT_EQ(j["prompt_token_ids"][0].get<std::vector<int32_t>>(), (std::vector<int32_t>{5, 9, 700}));
  EXPECT_EQ(j["prompt_token_ids"][1].get<std::vector<int32_t>>(), (std::vector<int32_t>{1023, 0}));
  EXPECT_EQ(j["output_token_ids"][0].get<std::vector<int32_t>>(), run.requests[0].tokens);
  EXPECT_EQ(j["output_token_ids"][1].get<std::vector<int32_t>>(), run.requests[1].tokens);
  EXPECT_EQ(j["output_token_ids"][1].size(), 3u);
  EXPECT_THAT(j["request_seeds"].get<std::vector<uint64_t>>(), ElementsAre(11u, 12u));
  EXPECT_THAT(j["max_tokens"].get<std::vector<int>>(), ElementsAre(4, 3));
  EXPECT_EQ(j["model"]["preset"], "tiny");
  EXPECT_EQ(j["model"]["block_size"], 32);
  EXPECT_EQ(j["model"]["dtype"], "fp32");
}

TEST(SaveTokenIdsTest, IdsAreLeftOutUnlessAsked) {
  BenchmarkResult run = SavedRun();
  run.options.save_token_ids = false;
  const nlohmann::json j = ResultToJson(run);
  EXPECT_FALSE(j.contains("prompt_token_ids"));
  EXPECT_FALSE(j.contains("output_token_ids"));
  EXPECT_EQ(j["model"]["dtype"], "fp32");  // the model is always there
}

TEST(SavedResultTest, CorrectRunVerifiesWithTheModelItNames) {
  absl::StatusOr<SavedResultCheck> check = VerifySavedResult(ResultToJson(SavedRun()));
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->requests, 2);
  EXPECT_EQ(check->checked, 2);
  EXPECT_TRUE(check->mismatched.empty());
  EXPECT_EQ(check->model.dtype, DType::kFP32);
  EXPECT_EQ(check->model.block_size, 32);
}

TEST(SavedResultTest, ChangedOutputTokenIsAMismatchNamingTheRequest) {
  nlohmann::json j = ResultToJson(SavedRun());
  j["output_token_ids"][1][2] = j["output_token_ids"][1][2].get<int>() + 1;
  absl::StatusOr<SavedResultCheck> check = VerifySavedResult(j);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_THAT(check->mismatched, ElementsAre("lg-1"));
}

// The same tokens checked as bf16 differ: the dtype in the file is what the check uses.
TEST(SavedResultTest, AnotherDtypeInTheFileMakesEveryRequestDiffer) {
  nlohmann::json j = ResultToJson(SavedRun());
  j["model"]["dtype"] = "bf16";
  absl::StatusOr<SavedResultCheck> check = VerifySavedResult(j);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_THAT(check->mismatched, ElementsAre("lg-0", "lg-1"));
}

TEST(SavedResultTest, RequestsThatFailedInTheRunAreNotChecked) {
  BenchmarkResult run = SavedRun();
  run.requests[0].success = false;
  run.requests[0].error = "UNAVAILABLE: worker gone";
  run.requests[0].tokens.resize(1);
  absl::StatusOr<SavedResultCheck> check = VerifySavedResult(ResultToJson(run));
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->failed_in_run, 1);
  EXPECT_EQ(check->checked, 1);
  EXPECT_TRUE(check->mismatched.empty());
}

TEST(SavedResultTest, ResultWithoutTokenIdsIsFailedPreconditionSayingWhichFlag) {
  BenchmarkResult run = SavedRun();
  run.options.save_token_ids = false;
  absl::Status s = VerifySavedResult(ResultToJson(run)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--save-token-ids"));
}

TEST(SavedResultTest, PromptTokenOutsideTheVocabularyIsInvalidArgument) {
  nlohmann::json j = ResultToJson(SavedRun());
  j["prompt_token_ids"][0][0] = 5000;  // tiny has 1024 tokens
  absl::Status s = VerifySavedResult(j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("request lg-0"));
}

TEST(SavedResultTest, ArraysOfDifferentLengthsAreInvalidArgument) {
  nlohmann::json j = ResultToJson(SavedRun());
  j["request_seeds"].erase(1);
  EXPECT_EQ(VerifySavedResult(j).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::loadgen
