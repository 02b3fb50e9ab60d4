// The streaming adapter over the request core, with a core that hands out known events: how
// the core's chunks become SSE chunks (no server, no cluster; tests/http/http_api_e2e_test.cc
// drives the real thing).

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http/completion_stream.h"
#include "http/openai_request.h"
#include "nlohmann/json.hpp"

namespace pdserve::http {
namespace {

using nlohmann::json;

class NoCall final : public router::Call {
 public:
  void Cancel() override {}
};

// Hands the sink the given events, in order, then ends the request OK.
class ScriptedCore final : public router::RequestCore {
 public:
  explicit ScriptedCore(std::vector<router::TokenEvent> events) : events_(std::move(events)) {}
  std::shared_ptr<router::Call> Start(const router::GenerateParams&,
                                      std::shared_ptr<router::EventSink> sink) override {
    absl::Status status = absl::OkStatus();
    for (const router::TokenEvent& e : events_) {
      if (!sink->OnEvent(e)) {
        status = absl::CancelledError("client gone");
        break;
      }
    }
    sink->OnDone(status);
    return std::make_shared<NoCall>();
  }
  router::CoreState State() const override { return {.model = *PresetConfig("tiny")}; }

 private:
  std::vector<router::TokenEvent> events_;
};

class StringChannel final : public ResponseChannel {
 public:
  bool Send(std::string bytes) override {
    sends.push_back(std::move(bytes));
    return true;
  }
  void End(bool whole) override { ended = whole ? 1 : 0; }
  std::vector<std::string> sends;
  int ended = -1;  // End not called
};

// The JSON payloads of the "data: " events in `bytes` (chunked framing around them ignored).
std::vector<std::string> DataEvents(const std::string& bytes) {
  std::vector<std::string> out;
  for (size_t pos = bytes.find("data: "); pos != std::string::npos;
       pos = bytes.find("data: ", pos)) {
    const size_t end = bytes.find("\n\n", pos);
    out.push_back(bytes.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

TEST(CompletionStreamTest, EveryTokenIsItsOwnChunkAndAMessageIsOneWrite) {
  router::TokenEvent a{.request_id = "cmpl-1", .tokens = {5, 6, 7}, .prompt_tokens = 2,
                       .first = true};
  router::TokenEvent b{.request_id = "cmpl-1", .tokens = {8}, .position = 5, .finished = true,
                       .finish_reason = "length"};
  ScriptedCore core({a, b});
  absl::StatusOr<OpenAiRequest> request =
      ParseOpenAiRequest(Endpoint::kCompletions,
                         R"({"prompt":[1,2],"max_tokens":4,"stream":true,"return_token_ids":true})",
                         *PresetConfig("tiny"));
  ASSERT_TRUE(request.ok()) << request.status();
  auto owned = std::make_shared<StringChannel>();
  StringChannel& channel = *owned;
  StartCompletion(core, *request, owned, /*keep_alive=*/true);
  ASSERT_EQ(channel.ended, 1);  // whole
  // Writes: the head with the first message's three chunks, the second message, [DONE].
  ASSERT_EQ(channel.sends.size(), 3u);
  EXPECT_EQ(DataEvents(channel.sends[0]).size(), 3u);
  EXPECT_EQ(DataEvents(channel.sends[1]).size(), 1u);
  std::vector<std::string> events;
  for (const std::string& s : channel.sends) {
    for (std::string& e : DataEvents(s)) events.push_back(std::move(e));
  }
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events.back(), "[DONE]");
  const std::vector<std::string> texts = {"5", " 6", " 7", " 8"};
  for (size_t i = 0; i < 4; ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["choices"][0]["text"], texts[i]);
    EXPECT_EQ(chunk["choices"][0]["finish_reason"], i == 3 ? json("length") : json(nullptr));
    EXPECT_EQ(chunk.contains("pdserve"), i == 3);
  }
  EXPECT_EQ(json::parse(events[3])["pdserve"]["token_ids"], json::array({5, 6, 7, 8}));
}

}  // namespace
}  // namespace pdserve::http
