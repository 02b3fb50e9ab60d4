// The load generator over the router's OpenAI-compatible HTTP API, against a real cluster
// (router and workers as processes): every token verified against the synthetic model, counts
// and totals exact, the same tokens as over gRPC, errors counted by their HTTP status, and the
// `pdserve loadgen --backend openai` command writing its JSON and CSV.
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "loadgen/load_runner.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/e2e_cluster.h"
#include "tests/e2e/e2e_process.h"

namespace pdserve::loadgen {
namespace {

class HttpLoadgenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = e2e::Start(e2e::Options("local", 1, 1)).release(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    ASSERT_FALSE(cluster_->http_url().empty());
  }

  static LoadOptions Options(ClientApi api, int n) {
    LoadOptions o;
    o.api = api;
    o.backend = ClientApiName(api);
    o.target = cluster_->endpoint();
    o.base_url = cluster_->http_url();
    o.num_prompts = n;
    o.random.input_len = 24;
    o.random.output_len = 10;
    o.random.range_ratio = 0.5;
    o.arrival.request_rate = 200;
    o.seed = 7;
    o.progress = ProgressMode::kOff;
    o.request_timeout_s = 60;
    return o;
  }

  static cluster::Cluster* cluster_;
};
cluster::Cluster* HttpLoadgenTest::cluster_ = nullptr;

void ExpectEveryRequestExact(const BenchmarkResult& result, int n) {
  EXPECT_EQ(result.metrics.completed, n);
  EXPECT_EQ(result.metrics.failed, 0) << (result.requests.empty() ? "" : result.requests[0].error);
  EXPECT_EQ(result.verify_mismatches, 0);
  int64_t input = 0, output = 0;
  for (const RequestRecord& r : result.requests) {
    input += r.input_len;
    output += r.max_tokens;
    EXPECT_TRUE(r.success) << r.request_id << ": " << r.error;
    EXPECT_EQ(r.output_tokens, r.max_tokens) << r.request_id;
    EXPECT_EQ(static_cast<int>(r.tokens.size()), r.max_tokens) << r.request_id;
    EXPECT_EQ(r.itl_s.size() + 1, r.event_tokens.size()) << r.request_id;
    EXPECT_GT(r.ttft_s, 0) << r.request_id;
    EXPECT_GE(r.e2el_s, r.ttft_s) << r.request_id;
    EXPECT_TRUE(r.timeline.present) << r.request_id;
    EXPECT_EQ(r.timeline.decode_worker, "decode-0") << r.request_id;
    // TTFT's stages (common/ttft_stages.h) from the timeline the API returned: they add up to
    // the router's TTFT, which lies within the client's (10 us for the two clocks' rounding).
    EXPECT_EQ(r.timeline.ttft_stage_ms.size(), 8u) << r.request_id;
    double stages = 0;
    for (double ms : r.timeline.ttft_stage_ms) stages += ms;
    EXPECT_NEAR(stages, r.timeline.relayed_ttft_ms, 1e-6) << r.request_id;
    EXPECT_LE(r.timeline.relayed_ttft_ms, r.ttft_s * 1e3 + 0.01) << r.request_id;
    EXPECT_EQ(r.request_id.rfind("cmpl-", 0), 0u) << r.request_id;  // the server's id
  }
  EXPECT_EQ(result.metrics.total_input_tokens, input);
  EXPECT_EQ(result.metrics.total_output_tokens, output);
  ASSERT_TRUE(result.metrics.timeline.has_value());
  EXPECT_EQ(result.metrics.timeline->ttft_stage_requests, n);
}

TEST_F(HttpLoadgenTest, CompletionsVerifyEveryTokenWithExactCounts) {
  LoadOptions o = Options(ClientApi::kOpenAi, 30);
  o.verify = true;
  o.num_warmups = 2;
  absl::StatusOr<BenchmarkResult> result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectEveryRequestExact(*result, 30);
  // The model came from GET /v1/models' pdserve spec, not from an assumed preset.
  EXPECT_EQ(ModelDifference(result->model, cluster_->model()), "");
  EXPECT_EQ(result->warmup_completed, 2);
}

TEST_F(HttpLoadgenTest, ChatCompletionsVerifyEveryToken) {
  LoadOptions o = Options(ClientApi::kOpenAiChat, 12);
  o.verify = true;
  o.random.prefix_len = 4;
  absl::StatusOr<BenchmarkResult> result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectEveryRequestExact(*result, 12);
}

// The same seed sends the same prompts: HTTP and gRPC must stream the same tokens.
TEST_F(HttpLoadgenTest, HttpAndGrpcGiveTheSameTokens) {
  absl::StatusOr<BenchmarkResult> http = RunLoad(Options(ClientApi::kOpenAi, 10));
  absl::StatusOr<BenchmarkResult> grpc = RunLoad(Options(ClientApi::kPdserve, 10));
  ASSERT_TRUE(http.ok()) << http.status();
  ASSERT_TRUE(grpc.ok()) << grpc.status();
  ASSERT_EQ(http->requests.size(), grpc->requests.size());
  for (size_t i = 0; i < http->requests.size(); ++i) {
    EXPECT_EQ(http->requests[i].tokens, grpc->requests[i].tokens) << i;
    EXPECT_EQ(http->requests[i].input_len, grpc->requests[i].input_len) << i;
  }
}

// Prompts longer than the model's context: the router answers 400 before streaming, and each
// request fails with that reason; the run itself is a result, not an error.
TEST_F(HttpLoadgenTest, RefusedRequestsAreCountedByTheirHttpStatus) {
  LoadOptions o = Options(ClientApi::kOpenAi, 6);
  o.random.range_ratio = 0;
  o.random.input_len = cluster_->model().max_model_len + 1;
  absl::StatusOr<BenchmarkResult> result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->metrics.completed, 0);
  EXPECT_EQ(result->metrics.failed, 6);
  // The messages name the request and its lengths; counted by cause they are one line.
  ASSERT_EQ(result->metrics.error_counts.size(), 1u);
  const auto& [cause, refused] = *result->metrics.error_counts.begin();
  EXPECT_EQ(cause.rfind("HTTP 400: ", 0), 0u) << cause;
  EXPECT_EQ(refused, 6);
}

TEST_F(HttpLoadgenTest, APresetOtherThanTheServedOneIsRefusedBeforeSending) {
  LoadOptions o = Options(ClientApi::kOpenAi, 2);
  o.preset = "small";
  absl::StatusOr<BenchmarkResult> result = RunLoad(o);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
}

// vllm bench serve's --model names the model sent in every request: one the server does not
// serve stops the run before anything is sent, instead of N requests answered 404.
TEST_F(HttpLoadgenTest, AModelTheServerDoesNotServeIsRefusedBeforeSending) {
  LoadOptions o = Options(ClientApi::kOpenAi, 2);
  o.model_id = "not-served";
  absl::StatusOr<BenchmarkResult> result = RunLoad(o);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status().message().find("'not-served'"), std::string::npos) << result.status();
  o.model_id = "tiny";  // the served name: runs
  absl::StatusOr<BenchmarkResult> ok = RunLoad(o);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->metrics.completed, 2);
}

TEST_F(HttpLoadgenTest, CommandWritesJsonAndCsvWithExactTotals) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/http-loadgen-", getpid());
  std::filesystem::remove_all(dir);
  const e2e::Exit run = e2e::RunPdserve(
      {"loadgen", "--backend", "openai", "--base-url", cluster_->http_url(), "--verify",
       "--num-prompts", "16", "--random-input-len", "20", "--random-output-len", "6",
       "--request-rate", "100", "--progress", "off", "--output-json", dir + "/run.json"});
  ASSERT_EQ(run.code, 0) << run.output;
  std::ifstream in(dir + "/run.json");
  ASSERT_TRUE(in.good()) << run.output;
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["backend"], "openai");
  EXPECT_EQ(j["completed"], 16);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["total_output_tokens"], 16 * 6);
  EXPECT_EQ(j["total_input_tokens"], 16 * 20);
  std::ifstream csv(dir + "/run.csv");
  ASSERT_TRUE(csv.good());
  int lines = 0;
  for (std::string line; std::getline(csv, line);) ++lines;
  EXPECT_EQ(lines, 1 + 16);  // header + one row per request
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pdserve::loadgen
