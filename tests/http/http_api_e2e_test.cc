// The OpenAI-compatible HTTP API against a real cluster (router and workers as processes):
// responses parsed from the bytes on the wire, tokens compared with the synthetic model, every
// error code provoked for real, and a client that leaves mid-stream frees every KV block.

#include <filesystem>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/completion_stream.h"
#include "http/openai_response.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/http/http_test_client.h"

namespace pdserve::http_test {
namespace {

using e2e::Client;
using nlohmann::json;
using ::testing::HasSubstr;

int PortOf(const cluster::Cluster& c) {
  int port = 0;
  const std::string url = c.http_url();
  EXPECT_TRUE(absl::SimpleAtoi(url.substr(url.rfind(':') + 1), &port)) << url;
  return port;
}

std::vector<int32_t> Expected(const std::vector<int32_t>& prompt, int max_tokens, uint64_t seed,
                              const ModelConfig& config) {
  return model::ReferenceGenerate(prompt, max_tokens, config, seed);
}

std::vector<int32_t> Ids(const json& j) { return j.get<std::vector<int32_t>>(); }

// Waits (bounded) until the router shows no request and every block free, then checks it.
void AwaitIdleAndAllBlocksFree(Client& client) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    absl::StatusOr<v1::ClusterStatus> s = client.Status();
    bool idle = s.ok() && s->waiting_requests() == 0 && s->running_requests() == 0;
    for (int i = 0; idle && i < s->workers_size(); ++i) {
      idle = s->workers(i).capacity().free_blocks() == s->workers(i).capacity().total_blocks() &&
             s->workers(i).reserved_blocks() == 0;
    }
    if (idle) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  e2e::ExpectAllBlocksFree(client);
}

void ExpectError(const HttpResponse& r, int status, const std::string& type,
                 const std::string& message_part) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  const json j = r.Json();
  EXPECT_EQ(j["object"], "error");
  EXPECT_EQ(j["code"], status);
  EXPECT_EQ(j["type"], type);
  EXPECT_THAT(j["message"].get<std::string>(), HasSubstr(message_part));
}

class HttpApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster::ClusterOptions options = e2e::Options("local", 1, 1);
    // Slow enough decode steps that a long request is still running when its client leaves.
    options.decode_args.insert(options.decode_args.end(), {"--min-step-us", "10000"});
    cluster_ = e2e::Start(options).release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr); }
  int port() const { return PortOf(*cluster_); }
  const ModelConfig& model() const { return cluster_->model(); }

  static cluster::Cluster* cluster_;
};
cluster::Cluster* HttpApiTest::cluster_ = nullptr;

TEST_F(HttpApiTest, NonStreamingCompletionOfTokenIdsEqualsTheModelWithExactUsage) {
  const std::vector<int32_t> prompt = {5, 17, 300, 42, 9, 1000, 3};
  const json request = {{"model", "tiny"},    {"prompt", prompt},   {"max_tokens", 12},
                        {"seed", 77},         {"temperature", 0.7}, {"top_p", 0.9},
                        {"ignore_eos", true}, {"min_tokens", 4},    {"return_token_ids", true}};
  const HttpResponse r = Fetch(port(), "POST", "/v1/completions", request.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  const json j = r.Json();
  const std::vector<int32_t> expected = Expected(prompt, 12, 77, model());
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["text"], http::TokenText(expected, false));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 7);
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  EXPECT_EQ(j["usage"]["total_tokens"], 19);
  EXPECT_EQ(Ids(j["pdserve"]["token_ids"]), expected);
  EXPECT_EQ(Ids(j["pdserve"]["prompt_token_ids"]), prompt);
  // The core's id, named as vLLM names completions.
  const std::string core_id = j["pdserve"]["request_id"];
  EXPECT_EQ(j["id"], http::ResponseId(http::Endpoint::kCompletions, core_id));
  const json& t = j["pdserve"]["timeline"];
  EXPECT_GT(t["arrival_us"].get<int64_t>(), 0);
  EXPECT_LE(t["arrival_us"].get<int64_t>(), t["first_token_us"].get<int64_t>());
  EXPECT_LE(t["first_token_us"].get<int64_t>(), t["finish_us"].get<int64_t>());
  EXPECT_EQ(t["decode_worker"], "decode-0");
}

TEST_F(HttpApiTest, TextPromptGoesThroughTheSyntheticTokenizer) {
  const json request = {{"model", "tiny"}, {"prompt", "hello pdserve world"}, {"max_tokens", 5}};
  const HttpResponse r = Fetch(port(), "POST", "/v1/completions", request.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.Json();
  EXPECT_EQ(j.contains("pdserve"), false);  // only when asked for
  const std::vector<int32_t> prompt =
      model::TokenizeText("hello pdserve world", model().vocab_size);
  EXPECT_EQ(j["choices"][0]["text"], http::TokenText(Expected(prompt, 5, 0, model()), false));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
}

TEST_F(HttpApiTest, StreamingCompletionIsSseChunksThenUsageThenDone) {
  const json request = {{"model", "tiny"},         {"prompt", "stream me some tokens"},
                        {"max_tokens", 16},        {"seed", 3},
                        {"stream", true},          {"stream_options", {{"include_usage", true}}},
                        {"return_token_ids", true}};
  const HttpResponse r = Fetch(port(), "POST", "/v1/completions", request.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers.at("content-type"), "text/event-stream; charset=utf-8");
  EXPECT_EQ(r.headers.at("transfer-encoding"), "chunked");
  const std::vector<std::string> events = SseEvents(r.body);
  // One chunk per token (as vLLM streams), possibly a last one with no text that carries only
  // the finish reason (when the core's final event has no tokens), then usage, then [DONE].
  ASSERT_GE(events.size(), 16u + 2u);
  ASSERT_LE(events.size(), 16u + 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  const json usage = json::parse(events[events.size() - 2]);
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(usage["usage"]["completion_tokens"], 16);
  EXPECT_EQ(usage["usage"]["total_tokens"], 20);
  const std::vector<int32_t> expected =
      Expected(model::TokenizeText("stream me some tokens", model().vocab_size), 16, 3, model());
  std::string text;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "text_completion");
    EXPECT_EQ(chunk["id"], usage["id"]);
    EXPECT_TRUE(chunk["usage"].is_null());
    text += chunk["choices"][0]["text"].get<std::string>();
    if (i < 16) {
      EXPECT_EQ(chunk["choices"][0]["text"].get<std::string>(),
                http::TokenText(std::span(expected).subspan(i, 1), i > 0));
    } else {
      EXPECT_EQ(chunk["choices"][0]["text"], "");  // the finish reason's own chunk
    }
    const bool last = i + 3 == events.size();
    EXPECT_EQ(chunk["choices"][0]["finish_reason"], last ? json("length") : json(nullptr));
    EXPECT_EQ(chunk.contains("pdserve"), last);
    if (last) EXPECT_EQ(Ids(chunk["pdserve"]["token_ids"]), expected);
  }
  EXPECT_EQ(text, http::TokenText(expected, false));
}

TEST_F(HttpApiTest, ChatCompletionStreamsDeltasWithTheAssistantRoleFirst) {
  const json messages = json::array({{{"role", "user"}, {"content", "hi there"}}});
  const std::vector<int32_t> prompt = model::TokenizeText("user: hi there\n", model().vocab_size);
  const std::vector<int32_t> expected = Expected(prompt, 6, 0, model());
  const HttpResponse whole =
      Fetch(port(), "POST", "/v1/chat/completions",
            json{{"model", "tiny"}, {"messages", messages}, {"max_completion_tokens", 6}}.dump());
  ASSERT_EQ(whole.status, 200) << whole.body;
  const json j = whole.Json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], http::TokenText(expected, false));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);

  const HttpResponse streamed =
      Fetch(port(), "POST", "/v1/chat/completions",
            json{{"messages", messages}, {"max_tokens", 6}, {"stream", true}}.dump());
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  const std::vector<std::string> events = SseEvents(streamed.body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_EQ(chunk["choices"][0]["delta"].contains("role"), i == 0);
    text += chunk["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, http::TokenText(expected, false));
}

TEST_F(HttpApiTest, InfoEndpointsAnswer) {
  const HttpResponse health = Fetch(port(), "GET", "/health");
  EXPECT_EQ(health.status, 200);
  const HttpResponse ready = Fetch(port(), "GET", "/ready");
  ASSERT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(ready.Json()["prefill_workers"], 1);
  EXPECT_EQ(ready.Json()["decode_workers"], 1);
  const HttpResponse models = Fetch(port(), "GET", "/v1/models");
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(models.Json()["data"][0]["id"], "tiny");
  EXPECT_EQ(models.Json()["data"][0]["max_model_len"], 4096);
  const HttpResponse version = Fetch(port(), "GET", "/version");
  ASSERT_EQ(version.status, 200);
  EXPECT_FALSE(version.Json()["version"].get<std::string>().empty());
}

TEST_F(HttpApiTest, BadRequestsGetVllmErrorsAndTheSameMessagesAsGrpc) {
  const auto post = [&](const std::string& body) {
    return Fetch(port(), "POST", "/v1/completions", body);
  };
  ExpectError(post("{not json"), 400, "BadRequestError", "not valid JSON");
  ExpectError(post(R"({"prompt":"a b","max_tokens":0})"), 400, "BadRequestError",
              "max_tokens must be positive");
  ExpectError(post(R"({"prompt":"a b","max_tokens":4096})"), 400, "BadRequestError",
              "exceeds max_model_len 4096");
  ExpectError(post(R"({"prompt":"a b","n":2})"), 400, "BadRequestError", "n = 2");
  ExpectError(post(R"({"prompt":[1,[2]]})"), 400, "BadRequestError", "batched prompts");
  ExpectError(post(R"({"prompt":"a","stream_options":{"include_usage":true}})"), 400,
              "BadRequestError", "stream_options");
  ExpectError(post(std::string(40, '[') + std::string(40, ']')), 400, "BadRequestError",
              "nests deeper than 32");
  ExpectError(post(R"({"model":"gpt-4","prompt":"a"})"), 404, "NotFoundError",
              "The model `gpt-4` does not exist.");
  ExpectError(Fetch(port(), "GET", "/v1/nothing"), 404, "NotFoundError", "Not Found");
  ExpectError(Fetch(port(), "GET", "/v1/completions"), 405, "MethodNotAllowedError", "POST");
  {
    // A declared body over the bound is refused before any of it is read (so the head alone is
    // sent: closing with unread bytes would reset the connection under the answer).
    Socket s(port());
    ASSERT_TRUE(
        s.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n"));
    std::string text;
    while (s.Receive(text)) {
    }
    ExpectError(ParseResponse(text), 413, "PayloadTooLargeError", "exceeds 1048576 bytes");
  }

  // The core validates for both front ends: gRPC says the same about the same request.
  Client grpc_client(cluster_->endpoint());
  v1::GenerateRequest same;
  same.set_prompt_text("a b");
  same.set_max_tokens(4096);
  const e2e::Outcome rejected = grpc_client.Generate(same);
  EXPECT_EQ(rejected.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const std::string http_message = post(R"({"prompt":"a b","max_tokens":4096})").Json()["message"];
  EXPECT_EQ(http_message.substr(http_message.find(':')),
            rejected.status.error_message().substr(rejected.status.error_message().find(':')));
  AwaitIdleAndAllBlocksFree(grpc_client);
}

TEST_F(HttpApiTest, ClientLeavingMidStreamCancelsItsRequestAndFreesEveryBlock) {
  Client client(cluster_->endpoint());
  AwaitIdleAndAllBlocksFree(client);
  const v1::ClusterStatus before = *client.Status();
  {
    Socket s(port());
    ASSERT_TRUE(s.connected());
    // 3000 tokens at >= 10 ms a step: tens of seconds unless cancelled.
    const json request = {{"prompt", "leave early"}, {"max_tokens", 3000}, {"stream", true}};
    ASSERT_TRUE(s.Send(RequestText("POST", "/v1/completions", request.dump(), false)));
    std::string received;
    while (received.find("\"text\"") == std::string::npos) ASSERT_TRUE(s.Receive(received));
    EXPECT_THAT(received, HasSubstr("HTTP/1.1 200 OK"));
    absl::StatusOr<v1::ClusterStatus> running = client.Status();
    ASSERT_TRUE(running.ok());
    EXPECT_EQ(running->running_requests(), 1u);
  }  // closed here, mid-stream
  AwaitIdleAndAllBlocksFree(client);
  const v1::ClusterStatus after = *client.Status();
  EXPECT_EQ(after.failed_requests(), before.failed_requests() + 1);  // cancelled, not finished
  EXPECT_EQ(after.finished_requests(), before.finished_requests());
}

// The number of threads of process `pid` (its /proc/PID/task entries).
int ThreadsOf(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    n++;
  }
  return n;
}

// Waits (30 s at most) until `n` requests are running or waiting in the router's core, and
// expects exactly `n`.
void ExpectAllInTheCore(Client& client, int n) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::StatusOr<v1::ClusterStatus> s;
  do {
    absl::SleepFor(absl::Milliseconds(20));
    s = client.Status();
  } while (s.ok() && s->waiting_requests() + s->running_requests() < static_cast<uint32_t>(n) &&
           absl::Now() < deadline);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->waiting_requests() + s->running_requests(), static_cast<uint32_t>(n));
}

TEST_F(HttpApiTest, OpenStreamsHoldNoRouterThreadEach) {
  Client client(cluster_->endpoint());
  AwaitIdleAndAllBlocksFree(client);
  absl::StatusOr<pid_t> router = cluster_->Pid("router");
  ASSERT_TRUE(router.ok()) << router.status();
  const int idle_threads = ThreadsOf(*router);
  ASSERT_GT(idle_threads, 0);
  constexpr int kStreams = 200;
  std::vector<std::unique_ptr<Socket>> sockets;
  for (int i = 0; i < kStreams; ++i) {
    auto s = std::make_unique<Socket>(port());
    ASSERT_TRUE(s->connected());
    const json request = {{"prompt", absl::StrCat("stream ", i)}, {"max_tokens", 3000},
                          {"stream", true}};
    ASSERT_TRUE(s->Send(RequestText("POST", "/v1/completions", request.dump(), false)));
    sockets.push_back(std::move(s));
  }
  // Every request reached the core: running (one at a time fits the pool) or waiting.
  ExpectAllInTheCore(client, kStreams);
  // A thread per request would be 200 more; the core and the HTTP server use fixed pools.
  const int open_threads = ThreadsOf(*router);
  EXPECT_LT(open_threads, idle_threads + 20) << "idle " << idle_threads;
  sockets.clear();  // every client leaves: queued and running requests are cancelled
  AwaitIdleAndAllBlocksFree(client);
}

// The same over gRPC: Router.Generate runs on the callback API (router/generate_reactor.h). The
// client holds 200 calls open on one completion queue without reading them.
TEST_F(HttpApiTest, GrpcOpenStreamsHoldNoRouterThreadEach) {
  Client client(cluster_->endpoint());
  AwaitIdleAndAllBlocksFree(client);
  absl::StatusOr<pid_t> router = cluster_->Pid("router");
  ASSERT_TRUE(router.ok()) << router.status();
  const int idle_threads = ThreadsOf(*router);
  constexpr int kStreams = 200;
  auto stub = v1::Router::NewStub(
      grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials()));
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientAsyncReader<v1::GenerateResponse>>> readers;
  for (int i = 0; i < kStreams; ++i) {
    v1::GenerateRequest request;
    request.set_request_id(absl::StrCat("grpc-open-", i));
    request.set_prompt_len(16);
    request.set_max_tokens(3000);
    request.set_seed(static_cast<uint64_t>(i));
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(stub->AsyncGenerate(contexts.back().get(), request, &cq,
                                          reinterpret_cast<void*>(static_cast<intptr_t>(i))));
  }
  ExpectAllInTheCore(client, kStreams);
  const int open_threads = ThreadsOf(*router);
  EXPECT_LT(open_threads, idle_threads + 20) << "idle " << idle_threads;
  for (auto& ctx : contexts) ctx->TryCancel();  // every request is cancelled in the core
  AwaitIdleAndAllBlocksFree(client);
  // The calls' start operations complete on the queue: drained before the readers that own
  // them go.
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  readers.clear();
}

// Separate clusters: these change what the router can accept.
TEST(HttpApiLimitsTest, FullQueueIs429AndNoDecodeWorkerIs503) {
  cluster::ClusterOptions options = e2e::Options("local", 1, 1);
  options.decode_blocks = 8;  // one request of 8 blocks at a time
  options.decode_args.insert(options.decode_args.end(), {"--min-step-us", "15000"});
  options.router_args = {"--max-waiting", "1", "--missed-heartbeats", "4"};
  auto cluster = e2e::Start(options);
  ASSERT_NE(cluster, nullptr);
  const int port = PortOf(*cluster);
  Client client(cluster->endpoint());
  absl::Notification first_running;
  std::vector<e2e::Outcome> out(2);
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    out[0] = client.Generate(Client::Request("q0", 64, 64, 0), [&] { first_running.Notify(); });
  });
  ASSERT_TRUE(first_running.WaitForNotificationWithTimeout(absl::Seconds(60)));
  threads.emplace_back([&] { out[1] = client.Generate("q1", 64, 64, 1); });
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline && client.Status()->waiting_requests() < 1) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const HttpResponse full =
      Fetch(port, "POST", "/v1/completions", R"({"prompt":"one too many","max_tokens":64})");
  for (std::thread& t : threads) t.join();
  ExpectError(full, 429, "RateLimitError", "queue");
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(out[i].status.ok()) << out[i].status.error_message();

  ASSERT_TRUE(cluster->Kill("decode-0", SIGKILL).ok());
  const absl::Time dropped_by = absl::Now() + absl::Seconds(60);
  HttpResponse ready;
  do {
    absl::SleepFor(absl::Milliseconds(50));
    ready = Fetch(port, "GET", "/ready");
  } while (ready.status == 200 && absl::Now() < dropped_by);
  ExpectError(ready, 503, "ServiceUnavailableError", "0 decode workers");
  ExpectError(Fetch(port, "POST", "/v1/completions", R"({"prompt":"nobody home"})"), 503,
              "ServiceUnavailableError", "decode");
}

}  // namespace
}  // namespace pdserve::http_test
