// The HTTP API's request reading and response shapes, without a server.

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_wire.h"
#include "http/openai_request.h"
#include "http/openai_response.h"
#include "nlohmann/json.hpp"

namespace pdserve::http {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

ModelConfig Tiny() { return *PresetConfig("tiny"); }

TEST(OpenAiRequestTest, CompletionFieldsBecomeCoreParams) {
  absl::StatusOr<OpenAiRequest> r = ParseOpenAiRequest(
      Endpoint::kCompletions,
      R"({"model":"tiny","prompt":[1,2,3],"max_tokens":9,"seed":12,"ignore_eos":true,
          "stream":true,"stream_options":{"include_usage":true},"return_token_ids":true,
          "temperature":0,"top_p":1,"unknown_field":{"x":1}})",
      Tiny());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->params.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r->params.max_tokens, 9);
  EXPECT_EQ(r->params.seed, 12u);
  EXPECT_EQ(r->params.preset, "tiny");
  EXPECT_TRUE(r->params.ignore_eos);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_TRUE(r->return_token_ids);
}

TEST(OpenAiRequestTest, MaxTokensDefaultsTo16AndMaxCompletionTokensWins) {
  EXPECT_EQ(
      ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt":"a"})", Tiny())->params.max_tokens,
      kDefaultMaxTokens);
  EXPECT_EQ(ParseOpenAiRequest(Endpoint::kChatCompletions,
                               R"({"messages":[{"role":"user","content":"a"}],"max_tokens":3,
                                   "max_completion_tokens":7})",
                               Tiny())
                ->params.max_tokens,
            7);
}

TEST(OpenAiRequestTest, ChatMessagesAreFlattenedToRoleLines) {
  absl::StatusOr<OpenAiRequest> r =
      ParseOpenAiRequest(Endpoint::kChatCompletions,
                         R"({"messages":[{"role":"system","content":"be brief"},
                      {"role":"user","content":[{"type":"text","text":"hi"}]}]})",
                         Tiny());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->params.prompt_text, "system: be brief\nuser: hi\n");
}

TEST(OpenAiRequestTest, HostileOrUnsupportedBodiesAreRejectedWithTheirCode) {
  const auto code = [](std::string_view body) {
    return ParseOpenAiRequest(Endpoint::kCompletions, body, Tiny()).status().code();
  };
  EXPECT_EQ(code("[1]"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(R"({"prompt":"a","n":3})"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(R"({"prompt":"a","max_tokens":4,"min_tokens":5})"),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(R"({"prompt":"a","max_tokens":99999999999})"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(R"({"prompt":[-1]})"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(R"({"prompt":"a","temperature":"hot"})"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(R"({"model":"llama","prompt":"a"})"), absl::StatusCode::kNotFound);
  std::string deep = R"({"prompt":"a","x":)" + std::string(33, '[') + std::string(33, ']') + "}";
  EXPECT_EQ(code(deep), absl::StatusCode::kInvalidArgument);
}

TEST(OpenAiRequestTest, NestingDepthSkipsBracketsInStrings) {
  EXPECT_EQ(JsonNestingDepth(R"({"a":"[[[{{{","b":[{}]})"), 3);
  EXPECT_EQ(JsonNestingDepth(R"({"a":"\"[["})"), 1);
}

TEST(OpenAiResponseTest, ErrorBodyHasVllmShape) {
  const json j = json::parse(ErrorBody(429, "the waiting queue is full"));
  EXPECT_EQ(j, (json{{"object", "error"},
                     {"message", "the waiting queue is full"},
                     {"type", "RateLimitError"},
                     {"param", nullptr},
                     {"code", 429}}));
  EXPECT_EQ(HttpStatusOf(absl::InvalidArgumentError("x")), 400);
  EXPECT_EQ(HttpStatusOf(absl::NotFoundError("x")), 404);
  EXPECT_EQ(HttpStatusOf(absl::ResourceExhaustedError("x")), 429);
  EXPECT_EQ(HttpStatusOf(absl::UnavailableError("x")), 503);
  EXPECT_EQ(HttpStatusOf(absl::InternalError("x")), 500);
}

TEST(OpenAiResponseTest, TokensAreWrittenAsSpaceSeparatedIds) {
  const std::vector<int32_t> tokens = {7, 0, 1023};
  EXPECT_EQ(TokenText(tokens, false), "7 0 1023");
  EXPECT_EQ(TokenText(tokens, true), " 7 0 1023");
}

TEST(HttpWireTest, OneSseEventIsOneHttpChunk) {
  EXPECT_EQ(EventChunk("[DONE]"), "e\r\ndata: [DONE]\n\n\r\n");
  EXPECT_THAT(WholeResponse(404, "application/json", "{}", false),
              HasSubstr("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(WholeResponse(200, "text/plain", "ok", true), HasSubstr("Content-Length: 2\r\n"));
}

}  // namespace
}  // namespace pdserve::http
