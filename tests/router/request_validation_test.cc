#include "router/request_validation.h"

#include "common/synthetic_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve::router {
namespace {

using ::testing::HasSubstr;

ModelConfig Tiny() { return *PresetConfig("tiny"); }

v1::GenerateRequest WithLen(int prompt_len, int max_tokens) {
  v1::GenerateRequest r;
  r.set_prompt_len(prompt_len);
  r.set_max_tokens(max_tokens);
  r.set_seed(3);
  return r;
}

TEST(RequestValidationTest, PromptLenBuildsTheSyntheticPrompt) {
  absl::StatusOr<std::vector<int32_t>> prompt = PromptOf(WithLen(12, 4), "r", Tiny());
  ASSERT_TRUE(prompt.ok());
  EXPECT_EQ(*prompt, model::SyntheticPrompt(3, 12, Tiny().vocab_size));
}

TEST(RequestValidationTest, OverlongRequestIdIsInvalidArgument) {
  EXPECT_TRUE(PromptOf(WithLen(12, 4), std::string(kMaxRequestIdBytes, 'r'), Tiny()).ok());
  absl::Status s =
      PromptOf(WithLen(12, 4), std::string(kMaxRequestIdBytes + 1, 'r'), Tiny()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("a request id of 257 bytes (at most 256)"));
}

TEST(RequestValidationTest, NonPositiveMaxTokensIsInvalidArgumentNamingRequest) {
  absl::Status s = PromptOf(WithLen(12, 0), "r-7", Tiny()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("request r-7"));
}

TEST(RequestValidationTest, NegativePromptLenIsInvalidArgument) {
  EXPECT_EQ(PromptOf(WithLen(-1, 4), "r", Tiny()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RequestValidationTest, TwoKindsOfPromptAreInvalidArgument) {
  v1::GenerateRequest r = WithLen(4, 4);
  r.set_prompt_text("a b");
  EXPECT_EQ(PromptOf(r, "r", Tiny()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RequestValidationTest, TotalBeyondMaxModelLenIsInvalidArgument) {
  absl::Status s = PromptOf(WithLen(4000, 97), "r", Tiny()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("4097 exceeds max_model_len 4096"));
}

TEST(RequestValidationTest, OtherKnownPresetIsInvalidArgument) {
  v1::GenerateRequest r = WithLen(4, 4);
  r.set_preset("small");
  absl::Status s = PromptOf(r, "r", Tiny()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("this cluster serves 'tiny'"));
}

TEST(RequestValidationTest, MatchingPresetIsAccepted) {
  v1::GenerateRequest r = WithLen(4, 4);
  r.set_preset("tiny");
  EXPECT_TRUE(PromptOf(r, "r", Tiny()).ok());
}

}  // namespace
}  // namespace pdserve::router
