// GET /metrics of a real cluster (router and workers as processes), scraped over HTTP and
// parsed: after N requests whose tokens are verified against the synthetic model, through gRPC
// and the HTTP API alike, every counter and histogram count moved by exactly what those requests
// did; and the Grafana dashboard queries only series these processes serve.

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/exposition_parser.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/http/http_test_client.h"
#include "tests/metrics/dashboard_queries.h"

namespace pdserve::metrics_test {
namespace {

using e2e::Client;
using http_test::Fetch;
using http_test::HttpResponse;
using metrics::Exposition;
using metrics::LabelMap;
using nlohmann::json;

int PortOf(const std::string& url) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(url.substr(url.rfind(':') + 1), &port)) << url;
  return port;
}

Exposition Scrape(const std::string& url) {
  const HttpResponse r = Fetch(PortOf(url), "GET", "/metrics");
  EXPECT_EQ(r.status, 200) << url;
  EXPECT_EQ(r.headers.count("content-type")
                ? r.headers.at("content-type").rfind("text/plain; version=0.0.4", 0)
                : std::string::npos,
            0u)
      << url;
  absl::StatusOr<Exposition> e = metrics::ParseExposition(r.body);
  EXPECT_TRUE(e.ok()) << url << ": " << e.status();
  return e.ok() ? *std::move(e) : Exposition{};
}

struct Scrapes {
  Exposition router, prefill, decode;
};

class MetricsE2eTest : public ::testing::Test {
 protected:
  // The cluster starts in the first test's SetUp, not in SetUpTestSuite: a start that fails
  // there makes gtest skip the tests, and ctest counts a skipped test as passed.
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (cluster_ == nullptr) cluster_ = e2e::Start(e2e::Options("local", 1, 1)).release();
    ASSERT_NE(cluster_, nullptr);
  }

  static std::string WorkerUrl(const std::string& name) {
    absl::StatusOr<std::string> url = cluster_->MetricsUrl(name);
    EXPECT_TRUE(url.ok()) << url.status();
    return url.ok() ? *url : "http://127.0.0.1:0";
  }
  static Scrapes ScrapeAll() {
    return {Scrape(cluster_->http_url()), Scrape(WorkerUrl("prefill-0")),
            Scrape(WorkerUrl("decode-0"))};
  }
  // The router shows no request in flight and every pool is free again.
  static void AwaitIdle() {
    Client client(cluster_->endpoint());
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      absl::StatusOr<v1::ClusterStatus> s = client.Status();
      bool idle = s.ok() && s->waiting_requests() == 0 && s->running_requests() == 0;
      for (int i = 0; idle && i < s->workers_size(); ++i) {
        idle = s->workers(i).capacity().free_blocks() == s->workers(i).capacity().total_blocks();
      }
      if (idle) return;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "the cluster did not become idle";
  }

  static cluster::Cluster* cluster_;
};
cluster::Cluster* MetricsE2eTest::cluster_ = nullptr;

// What the requests of a test did, from their own responses.
struct Served {
  int requests = 0;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  uint64_t kv_bytes = 0;
};

void ServeGrpc(Client& client, int prompt_len, int max_tokens, uint64_t seed, Served& served) {
  const e2e::Outcome out = client.Generate("", prompt_len, max_tokens, seed);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_EQ(out.tokens, e2e::Expected(prompt_len, max_tokens, seed));
  served.requests++;
  served.prompt_tokens += prompt_len;
  served.generated_tokens += static_cast<int64_t>(out.tokens.size());
  served.kv_bytes += out.timeline.kv_bytes();
}

void ServeHttp(int port, int prompt_len, int max_tokens, uint64_t seed, bool stream,
               const ModelConfig& model, Served& served) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < prompt_len; ++i) prompt.push_back(100 + i * 7);
  json request = {{"model", model.name}, {"prompt", prompt},         {"max_tokens", max_tokens},
                  {"seed", seed},        {"return_token_ids", true}, {"stream", stream}};
  const HttpResponse r = Fetch(port, "POST", "/v1/completions", request.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json extension;
  if (stream) {
    for (const std::string& event : http_test::SseEvents(r.body)) {
      if (event == "[DONE]") continue;
      const json chunk = json::parse(event);
      if (chunk.contains("pdserve")) extension = chunk["pdserve"];
    }
  } else {
    extension = r.Json()["pdserve"];
  }
  ASSERT_TRUE(extension.is_object()) << r.body;
  const std::vector<int32_t> tokens = extension["token_ids"].get<std::vector<int32_t>>();
  ASSERT_EQ(tokens, model::ReferenceGenerate(prompt, max_tokens, model, seed));
  served.requests++;
  served.prompt_tokens += prompt_len;
  served.generated_tokens += static_cast<int64_t>(tokens.size());
  served.kv_bytes += extension["timeline"]["kv_bytes"].get<uint64_t>();
}

double Delta(const Exposition& before, const Exposition& after, const std::string& name,
             const LabelMap& match = {}) {
  return after.Sum(name, match) - before.Sum(name, match);
}

TEST_F(MetricsE2eTest, CountersAndHistogramCountsMoveByExactlyWhatTheRequestsDid) {
  const Scrapes before = ScrapeAll();
  Client client(cluster_->endpoint());
  const int http_port = PortOf(cluster_->http_url());
  Served served;
  for (int i = 0; i < 3; ++i) ServeGrpc(client, 20 + 9 * i, 6 + i, 40 + i, served);
  ServeHttp(http_port, 11, 9, 7, /*stream=*/false, cluster_->model(), served);
  ServeHttp(http_port, 33, 5, 8, /*stream=*/true, cluster_->model(), served);
  ServeHttp(http_port, 4, 12, 9, /*stream=*/true, cluster_->model(), served);
  ASSERT_EQ(served.requests, 6);
  // Turned away at validation: counted as rejected, nowhere else.
  v1::GenerateRequest invalid = Client::Request("", 8, 0, 1);
  ASSERT_EQ(client.Generate(invalid).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  AwaitIdle();
  const Scrapes after = ScrapeAll();

  const double n = served.requests;
  const LabelMap tiny = {{"model_name", cluster_->model().name}};
  const Exposition &r0 = before.router, &r1 = after.router;
  EXPECT_EQ(Delta(r0, r1, "vllm:prompt_tokens_total", tiny), served.prompt_tokens);
  EXPECT_EQ(Delta(r0, r1, "vllm:generation_tokens_total", tiny), served.generated_tokens);
  EXPECT_EQ(Delta(r0, r1, "vllm:request_success_total",
                  {{"model_name", cluster_->model().name}, {"finished_reason", "length"}}),
            n);
  EXPECT_EQ(Delta(r0, r1, "vllm:request_success_total"), n);
  for (const char* h :
       {"vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds",
        "vllm:request_decode_time_seconds", "vllm:request_time_per_output_token_seconds"}) {
    const std::string name = h;
    EXPECT_EQ(Delta(r0, r1, name + "_count", tiny), n) << name;
    EXPECT_EQ(r1.Value(name + "_bucket", {{"model_name", "tiny"}, {"le", "+Inf"}}),
              r1.Value(name + "_count", tiny))
        << name;
    // Decode time (and so TPOT) is 0 for a request whose tokens all reached the router in one
    // chunk, as a fast model's do; TTFT, prefill and e2e always take time.
    const bool takes_time = name.find("decode") == std::string::npos &&
                            name.find("per_output") == std::string::npos &&
                            name.find("queue") == std::string::npos;
    EXPECT_GE(Delta(r0, r1, name + "_sum", tiny), takes_time ? 1e-6 : 0) << name;
  }
  // TTFT split into stages (common/ttft_stages.h): every stage observed once per request, and
  // their sums add up to TTFT's (one wall clock for the three processes: nothing clamped away).
  double stage_sums = 0;
  for (const char* stage : {"queue", "allocate", "dispatch", "prefill", "kv_transfer",
                            "decode_admit", "first_step", "relay"}) {
    const LabelMap labels = {{"model_name", cluster_->model().name}, {"stage", stage}};
    EXPECT_EQ(Delta(r0, r1, "pdserve:ttft_stage_seconds_count", labels), n) << stage;
    stage_sums += Delta(r0, r1, "pdserve:ttft_stage_seconds_sum", labels);
  }
  EXPECT_EQ(Delta(r0, r1, "pdserve:ttft_stage_seconds_count"), 8 * n);
  EXPECT_NEAR(stage_sums, Delta(r0, r1, "vllm:time_to_first_token_seconds_sum", tiny), 1e-6);
  EXPECT_GT(Delta(r0, r1, "pdserve:ttft_stage_seconds_sum",
                  {{"model_name", cluster_->model().name}, {"stage", "prefill"}}),
            0);
  // One gap per token chunk after a request's first: at most one per token after the first.
  const double itl = Delta(r0, r1, "vllm:inter_token_latency_seconds_count", tiny);
  EXPECT_LE(itl, served.generated_tokens - n);
  EXPECT_EQ(Delta(r0, r1, "pdserve:requests_rejected_total", {{"reason", "invalid_request"}}), 1);
  EXPECT_EQ(Delta(r0, r1, "pdserve:requests_rejected_total"), 1);
  EXPECT_EQ(r1.Value("vllm:num_requests_running", tiny), 0);
  EXPECT_EQ(r1.Value("vllm:num_requests_waiting", tiny), 0);
  EXPECT_EQ(r1.Value("pdserve:scheduler_queue_length"), 0);

  const Exposition &p0 = before.prefill, &p1 = after.prefill;
  const LabelMap prefill = {{"worker", "prefill-0"}};
  EXPECT_EQ(Delta(p0, p1, "pdserve:worker_requests_total", prefill), n);
  EXPECT_EQ(Delta(p0, p1, "pdserve:kv_transfer_seconds_count",
                  {{"worker", "prefill-0"}, {"backend", "local"}, {"transport", "memcpy"}}),
            n);
  EXPECT_EQ(Delta(p0, p1, "pdserve:kv_transfer_bytes_total", {{"backend", "local"}}),
            static_cast<double>(served.kv_bytes));
  EXPECT_GT(served.kv_bytes, 0u);
  EXPECT_EQ(Delta(p0, p1, "pdserve:kv_transfer_failures_total"), 0);
  EXPECT_EQ(p1.Value("pdserve:kv_pool_blocks_used", {{"worker", "prefill-0"}, {"role", "prefill"}}),
            0);
  EXPECT_EQ(
      p1.Value("pdserve:kv_pool_blocks_total", {{"worker", "prefill-0"}, {"role", "prefill"}}),
      256);

  const Exposition &d0 = before.decode, &d1 = after.decode;
  const LabelMap decode = {{"worker", "decode-0"}, {"role", "decode"}};
  EXPECT_EQ(Delta(d0, d1, "pdserve:worker_requests_total", decode), n);
  EXPECT_EQ(Delta(d0, d1, "pdserve:worker_generated_tokens_total", {{"worker", "decode-0"}}),
            served.generated_tokens);
  EXPECT_EQ(d1.Value("pdserve:kv_pool_blocks_used", decode), 0);
  EXPECT_EQ(d1.Value("pdserve:kv_pool_blocks_total", decode), 256);
  EXPECT_EQ(d1.Value("pdserve:worker_running_requests", decode), 0);
  EXPECT_EQ(d1.Value("vllm:kv_cache_usage_perc", {{"model_name", "tiny"}, {"worker", "decode-0"}}),
            0);
}

TEST_F(MetricsE2eTest, TheDashboardQueriesOnlySeriesTheProcessesServe) {
  Client client(cluster_->endpoint());
  Served served;
  ServeGrpc(client, 16, 4, 5, served);  // so that per-transport series exist
  AwaitIdle();
  const Scrapes s = ScrapeAll();
  std::set<std::string> served_names;
  for (const Exposition* e : {&s.router, &s.prefill, &s.decode}) {
    for (const std::string& name : e->SampleNames()) served_names.insert(name);
  }
  std::string error;
  const std::set<std::string> queried =
      DashboardMetricNames(PDSERVE_SOURCE_DIR "/deploy/grafana/pdserve.json", &error);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_GE(queried.size(), 10u);
  for (const std::string& name : queried) {
    EXPECT_TRUE(served_names.contains(name))
        << name << " is queried by deploy/grafana/pdserve.json but no process serves it";
  }
}

TEST_F(MetricsE2eTest, WorkerEndpointAnswersOnlyGetMetricsAndHealth) {
  const int port = PortOf(WorkerUrl("decode-0"));
  EXPECT_EQ(Fetch(port, "GET", "/health").status, 200);
  EXPECT_EQ(Fetch(port, "GET", "/v1/completions").status, 404);
  EXPECT_EQ(Fetch(port, "POST", "/metrics").status, 405);
  // The router answers /metrics on its HTTP API, and only GET.
  EXPECT_EQ(Fetch(PortOf(cluster_->http_url()), "POST", "/metrics").status, 405);
}

}  // namespace
}  // namespace pdserve::metrics_test
