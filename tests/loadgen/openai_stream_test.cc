// How a streamed OpenAI completion becomes a RequestRecord: vllm's definitions of TTFT and
// ITL, exact token counts from the pdserve extension and usage (and their disagreements
// caught), errors sent mid-stream, and --verify catching a doctored token list.
#include "loadgen/openai_stream.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/synthetic_model.h"
#include "gtest/gtest.h"
#include "http/openai_response.h"
#include "loadgen/openai_client.h"
#include "loadgen/verify.h"
#include "nlohmann/json.hpp"

namespace pdserve::loadgen {
namespace {

using nlohmann::json;
constexpr int64_t kMs = 1'000'000;

std::string TextChunk(const std::vector<int32_t>& tokens, bool leading_space,
                      const std::string& finish = "") {
  std::string text;
  for (int32_t t : tokens) {
    absl::StrAppend(&text, leading_space ? " " : "", t);
    leading_space = true;
  }
  json choice{{"index", 0}, {"text", text}, {"finish_reason", nullptr}};
  if (!finish.empty()) choice["finish_reason"] = finish;
  return json{{"object", "text_completion"}, {"choices", json::array({choice})}}.dump();
}

std::string Extension(const std::vector<int32_t>& ids) {
  return json{
      {"choices", json::array({json{{"index", 0}, {"text", ""}, {"finish_reason", "length"}}})},
      {"pdserve",
       {{"request_id", "cmpl-abc"},
        {"token_ids", ids},
        {"timeline",
         {{"arrival_us", 100},
          {"first_token_us", 600},
          {"finish_us", 900},
          {"transfer_copy_wait_us", 250},
          {"decode_worker", "decode-0"}}}}}}
      .dump();
}

std::string Usage(int prompt, int completion) {
  return json{{"choices", json::array()},
              {"usage", {{"prompt_tokens", prompt}, {"completion_tokens", completion}}}}
      .dump();
}

RequestRecord NewRecord(int input_len = 4) {
  RequestRecord r;
  r.input_len = input_len;
  return r;
}

// Events at 10, 12, 15 ms after a send at 0: TTFT 10 ms, ITL 2 and 3 ms, E2E 15 ms; the final
// chunk without text (finish_reason and extension) and the usage chunk are not token events.
TEST(OpenAiStreamTest, CompletionStreamFillsTheRecordAsTheGrpcPathDoes) {
  RequestRecord r = NewRecord();
  OpenAiStreamReader reader(&r, /*chat=*/false);
  reader.SetSendTime(0);
  reader.OnEvent(TextChunk({7}, false), 10 * kMs);
  reader.OnEvent(TextChunk({8, 9}, true), 12 * kMs);
  reader.OnEvent(TextChunk({10}, true), 15 * kMs);
  reader.OnEvent(Extension({7, 8, 9, 10}), 16 * kMs);
  reader.OnEvent(Usage(4, 4), 16 * kMs);
  reader.OnEvent("[DONE]", 17 * kMs);
  ASSERT_TRUE(reader.Finish()) << r.error;
  EXPECT_EQ(r.output_tokens, 4);
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{7, 8, 9, 10}));
  EXPECT_EQ(r.event_tokens, (std::vector<int32_t>{1, 2, 1}));
  EXPECT_DOUBLE_EQ(r.ttft_s, 0.010);
  ASSERT_EQ(r.itl_s.size(), 2u);
  EXPECT_DOUBLE_EQ(r.itl_s[0], 0.002);
  EXPECT_DOUBLE_EQ(r.itl_s[1], 0.003);
  EXPECT_DOUBLE_EQ(r.e2el_s, 0.015);  // the last token chunk, not [DONE]
  EXPECT_EQ(r.request_id, "cmpl-abc");
  EXPECT_TRUE(r.timeline.present);
  EXPECT_DOUBLE_EQ(r.timeline.server_ttft_ms, 0.5);
  EXPECT_EQ(r.timeline.decode_worker, "decode-0");
  EXPECT_DOUBLE_EQ(r.timeline.transfer_copy_wait_ms, 0.25);
}

TEST(OpenAiStreamTest, ChatDeltasAreTokenEvents) {
  RequestRecord r = NewRecord();
  OpenAiStreamReader reader(&r, /*chat=*/true);
  auto delta = [](const std::string& content, bool role) {
    json d{{"content", content}};
    if (role) d["role"] = "assistant";
    return json{
        {"choices", json::array({json{{"index", 0}, {"delta", d}, {"finish_reason", nullptr}}})}}
        .dump();
  };
  reader.OnEvent(delta("3 4", true), 5 * kMs);
  reader.OnEvent(delta(" 5", false), 6 * kMs);
  reader.OnEvent(Extension({3, 4, 5}), 6 * kMs);
  reader.OnEvent("[DONE]", 7 * kMs);
  ASSERT_TRUE(reader.Finish()) << r.error;
  EXPECT_EQ(r.output_tokens, 3);
  EXPECT_EQ(r.event_tokens, (std::vector<int32_t>{2, 1}));
}

TEST(OpenAiStreamTest, AnErrorMidStreamFailsTheRequestWithItsCode) {
  RequestRecord r = NewRecord();
  OpenAiStreamReader reader(&r, false);
  reader.OnEvent(TextChunk({1}, false), kMs);
  reader.OnEvent(R"({"error":{"object":"error","message":"decode-0 is gone","code":503}})",
                 2 * kMs);
  reader.OnEvent("[DONE]", 3 * kMs);
  EXPECT_FALSE(reader.Finish());
  EXPECT_EQ(r.error, "HTTP 503: decode-0 is gone");
}

TEST(OpenAiStreamTest, AStreamCutShortIsIncomplete) {
  RequestRecord r = NewRecord();
  OpenAiStreamReader reader(&r, false);
  reader.OnEvent(TextChunk({1, 2}, false, "length"), kMs);
  EXPECT_FALSE(reader.Finish());
  EXPECT_EQ(r.error, "INCOMPLETE: stream ended without [DONE]");
}

TEST(OpenAiStreamTest, TokenIdsThatDisagreeWithTheTextAreAProtocolError) {
  RequestRecord r = NewRecord();
  OpenAiStreamReader reader(&r, false);
  reader.OnEvent(TextChunk({1, 2}, false), kMs);
  reader.OnEvent(Extension({1, 2, 3}), kMs);
  reader.OnEvent("[DONE]", kMs);
  EXPECT_FALSE(reader.Finish());
  EXPECT_EQ(r.error, "PROTOCOL: the text carries 2 tokens, token_ids 3");
}

TEST(OpenAiStreamTest, UsageThatDisagreesIsAProtocolError) {
  RequestRecord r = NewRecord();
  OpenAiStreamReader reader(&r, false);
  reader.OnEvent(TextChunk({1, 2}, false, "length"), kMs);
  reader.OnEvent(Usage(4, 3), kMs);
  reader.OnEvent("[DONE]", kMs);
  EXPECT_FALSE(reader.Finish());
  EXPECT_EQ(r.error, "PROTOCOL: the text carries 2 tokens, usage counts 3");

  RequestRecord p = NewRecord(/*input_len=*/5);
  OpenAiStreamReader prompt(&p, false);
  prompt.OnEvent(TextChunk({1, 2}, false, "length"), kMs);
  prompt.OnEvent(Usage(4, 2), kMs);
  prompt.OnEvent("[DONE]", kMs);
  EXPECT_FALSE(prompt.Finish());
  EXPECT_EQ(p.error, "PROTOCOL: usage counts 4 prompt tokens, 5 were sent");
}

TEST(OpenAiStreamTest, NotJsonAndDataAfterDoneAreProtocolErrors) {
  RequestRecord r = NewRecord();
  OpenAiStreamReader reader(&r, false);
  reader.OnEvent("{not json", kMs);
  reader.OnEvent("[DONE]", kMs);
  EXPECT_FALSE(reader.Finish());
  EXPECT_EQ(r.error, "PROTOCOL: a chunk that is not JSON");

  RequestRecord d = NewRecord();
  OpenAiStreamReader after(&d, false);
  after.OnEvent(TextChunk({1}, false, "length"), kMs);
  after.OnEvent("[DONE]", kMs);
  after.OnEvent(TextChunk({2}, true), kMs);
  EXPECT_FALSE(after.Finish());
  EXPECT_EQ(d.error, "PROTOCOL: data after [DONE]");
}

// The oracle over HTTP: the extension's ids are what VerifyRecords compares, so one changed id
// fails the request (and the unchanged list passes).
TEST(OpenAiStreamTest, VerifyCatchesADoctoredTokenList) {
  const ModelConfig config = *PresetConfig("tiny");
  RequestSpec spec{.index = 0, .input_len = 6, .output_len = 5, .seed = 42};
  spec.prompt = model::SyntheticPrompt(9, spec.input_len, config.vocab_size);
  const std::vector<int32_t> expected =
      model::ReferenceGenerate(spec.prompt, spec.output_len, config, spec.seed);
  for (bool doctor : {false, true}) {
    std::vector<int32_t> sent = expected;
    if (doctor) sent[3] = (sent[3] + 1) % config.vocab_size;
    std::vector<RequestRecord> records(1, NewRecord(spec.input_len));
    OpenAiStreamReader reader(&records[0], false);
    reader.OnEvent(TextChunk(sent, false, "length"), kMs);
    reader.OnEvent(Extension(sent), kMs);
    reader.OnEvent(Usage(spec.input_len, spec.output_len), kMs);
    reader.OnEvent("[DONE]", kMs);
    records[0].success = reader.Finish();
    ASSERT_TRUE(records[0].success) << records[0].error;
    EXPECT_EQ(VerifyRecords({spec}, config, records), doctor ? 1 : 0);
    EXPECT_EQ(records[0].success, !doctor);
    if (doctor) {
      EXPECT_EQ(records[0].error, "verify: token differs from model::ReferenceGenerate");
    }
  }
}

// Chat sends the prompt as text; the ids --verify recomputes from are the server's tokens of
// the message it makes of it, as many as the prompt had.
TEST(OpenAiStreamTest, ChatPromptIdsKeepThePromptLength) {
  const std::vector<int32_t> prompt = {11, 22, 33, 44};
  const std::string text = ChatText(prompt);
  EXPECT_EQ(text, "22 33 44");
  const std::vector<int32_t> ids = ChatPromptIds(text, 1000);
  EXPECT_EQ(ids.size(), prompt.size());
  EXPECT_EQ(ids, model::TokenizeText("user: 22 33 44\n", 1000));
}

TEST(OpenAiStreamTest, CountWordsCountsSpaceSeparatedTokens) {
  EXPECT_EQ(CountWords(""), 0);
  EXPECT_EQ(CountWords(" 12"), 1);
  EXPECT_EQ(CountWords("1 2  3 "), 3);
}

// What the router lists (http::ModelList) is read back as the exact model: --verify over HTTP
// recomputes with the served dtype and block size, not the preset's defaults.
TEST(OpenAiModelListTest, ThePdserveSpecGivesTheServedModel) {
  ModelOverrides o;
  o.preset = "tiny";
  o.dtype = "fp32";
  o.block_size = 32;
  const ModelConfig served = *ResolveModelConfig(o);
  absl::StatusOr<ListedModel> listed = ReadModelList(http::ModelList(served, 0));
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->id, "tiny");
  ASSERT_TRUE(listed->config.ok()) << listed->config.status();
  EXPECT_EQ(ModelDifference(*listed->config, served), "");

  absl::StatusOr<ListedModel> other =
      ReadModelList(R"({"object":"list","data":[{"id":"meta-llama/x","object":"model"}]})");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->id, "meta-llama/x");
  EXPECT_EQ(other->config.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadModelList("[]").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::loadgen
