// The load generator against the built-in echo target over real gRPC on 127.0.0.1.
#include <filesystem>
#include <unistd.h>
#include <fstream>

#include "gtest/gtest.h"
#include "loadgen/echo_target.h"
#include "common/synthetic_model.h"
#include "loadgen/load_runner.h"
#include "loadgen/result_json.h"
#include "loadgen/saved_result.h"

namespace pdserve::loadgen {
namespace {

std::unique_ptr<EchoTarget> StartTarget(EchoTargetOptions options = {}) {
  auto target = EchoTarget::Start(options);
  EXPECT_TRUE(target.ok()) << target.status();
  return target.ok() ? *std::move(target) : nullptr;
}

LoadOptions Options(const EchoTarget& target, int n) {
  LoadOptions o;
  o.target = target.address();
  o.num_prompts = n;
  o.random.input_len = 16;
  o.random.output_len = 8;
  o.progress = ProgressMode::kOff;
  o.request_timeout_s = 60;
  return o;
}

TEST(LoadgenE2eTest, CompletesEveryRequestWithItsTokens) {
  auto target = StartTarget();
  LoadOptions o = Options(*target, 40);
  o.random.range_ratio = 0.5;
  o.arrival.request_rate = 400;  // Poisson
  auto result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  const BenchmarkMetrics& m = result->metrics;
  EXPECT_EQ(m.completed, 40);
  EXPECT_EQ(m.failed, 0);
  int64_t input = 0, output = 0;
  for (const RequestRecord& r : result->requests) {
    input += r.input_len;
    output += r.max_tokens;
    EXPECT_EQ(r.output_tokens, r.max_tokens) << r.request_id;
    EXPECT_EQ(static_cast<int>(r.itl_s.size()), r.max_tokens - 1) << r.request_id;
    EXPECT_TRUE(r.timeline.present);
    EXPECT_EQ(r.timeline.decode_worker, "echo");
  }
  EXPECT_EQ(m.total_input_tokens, input);
  EXPECT_EQ(m.total_output_tokens, output);
  EXPECT_EQ(result->generator.sent, 40);
  EXPECT_EQ(target->requests_seen(), 40u);
  ASSERT_TRUE(m.timeline.has_value());
  EXPECT_EQ(m.timeline->count, 40u);
}

TEST(LoadgenE2eTest, CountsInjectedFailuresByReason) {
  EchoTargetOptions echo;
  echo.fail_every = 5;
  auto target = StartTarget(echo);
  LoadOptions o = Options(*target, 50);
  auto result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->metrics.completed, 40);
  EXPECT_EQ(result->metrics.failed, 10);
  ASSERT_EQ(result->metrics.error_counts.size(), 1u);
  EXPECT_EQ(result->metrics.error_counts.at("UNAVAILABLE: echo target: injected failure"), 10);
  EXPECT_EQ(result->metrics.total_output_tokens, 40 * 8);
}

TEST(LoadgenE2eTest, VerifyAcceptsReferenceTokens) {
  auto target = StartTarget();
  LoadOptions o = Options(*target, 20);
  o.verify = true;
  o.random.prefix_len = 8;
  auto result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->verify_mismatches, 0);
  EXPECT_EQ(result->metrics.completed, 20);
}

// The target serves fp32 KV in blocks of 32; the loadgen is told nothing about it: --verify
// must read the model from the target's GetStatus (tokens depend on the dtype).
TEST(LoadgenE2eTest, VerifyUsesTheTargetsDtypeAndBlockSize) {
  EchoTargetOptions echo;
  echo.block_size = 32;
  echo.dtype = "fp32";
  auto target = StartTarget(echo);
  LoadOptions o = Options(*target, 12);
  o.verify = true;
  auto result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->verify_mismatches, 0);
  EXPECT_EQ(result->metrics.completed, 12);
  EXPECT_EQ(result->model.dtype, DType::kFP32);
  EXPECT_EQ(result->model.block_size, 32);
  EXPECT_EQ(result->model_id, "pdserve/tiny");
}

TEST(LoadgenE2eTest, PresetOtherThanTheTargetsIsRefusedBeforeSending) {
  auto target = StartTarget();
  LoadOptions o = Options(*target, 4);
  o.preset = "small";
  auto result = RunLoad(o);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("serves model tiny"), std::string::npos);
  EXPECT_EQ(target->requests_seen(), 0u);
}

// What --save-token-ids writes is what was sent and received, and verifies offline.
TEST(LoadgenE2eTest, SavedTokenIdsAreTheRunsAndVerifyOffline) {
  EchoTargetOptions echo;
  echo.dtype = "fp16";
  auto target = StartTarget(echo);
  LoadOptions o = Options(*target, 10);
  o.random.range_ratio = 0.5;
  o.save_token_ids = true;
  auto result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  const nlohmann::json j = ResultToJson(*result);
  ASSERT_EQ(j["prompt_token_ids"].size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    const RequestRecord& r = result->requests[i];
    const auto prompt = j["prompt_token_ids"][i].get<std::vector<int32_t>>();
    EXPECT_EQ(static_cast<int>(prompt.size()), r.input_len) << i;
    EXPECT_EQ(j["output_token_ids"][i].get<std::vector<int32_t>>(), r.tokens) << i;
    EXPECT_EQ(j["request_seeds"][i].get<uint64_t>(), r.seed) << i;
    // The echo target answered the reference for the prompt it received: so these are the ids
    // that were sent.
    EXPECT_EQ(r.tokens, model::ReferenceGenerate(prompt, r.max_tokens, result->model, r.seed))
        << i;
  }
  absl::StatusOr<SavedResultCheck> check = VerifySavedResult(j);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->checked, 10);
  EXPECT_TRUE(check->mismatched.empty());
  EXPECT_EQ(check->model.dtype, DType::kFP16);
}

TEST(LoadgenE2eTest, VerifyFailsRequestsWithWrongTokens) {
  EchoTargetOptions echo;
  echo.reference_tokens = false;
  auto target = StartTarget(echo);
  LoadOptions o = Options(*target, 12);
  o.verify = true;
  auto result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->verify_mismatches, 12);
  EXPECT_EQ(result->metrics.failed, 12);
  EXPECT_EQ(result->metrics.error_counts.at("verify: token differs from model::ReferenceGenerate"),
            12);
}

TEST(LoadgenE2eTest, MultiTokenChunkIsOneInterTokenEvent) {
  EchoTargetOptions echo;
  echo.tokens_per_chunk = 3;
  auto target = StartTarget(echo);
  LoadOptions o = Options(*target, 10);  // 8 tokens: chunks of 3, 3, 2
  o.verify = true;
  auto result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->verify_mismatches, 0);
  for (const RequestRecord& r : result->requests) {
    EXPECT_EQ(r.output_tokens, 8);
    EXPECT_EQ(r.event_tokens, (std::vector<int32_t>{3, 3, 2}));
    EXPECT_EQ(r.itl_s.size(), 2u);
  }
  EXPECT_EQ(result->metrics.itl_ms.count, 20u);
  EXPECT_EQ(result->metrics.tpot_ms.count, 10u);
}

TEST(LoadgenE2eTest, WarmupsAreSentButExcludedFromResults) {
  auto target = StartTarget();
  LoadOptions o = Options(*target, 10);
  o.num_warmups = 4;
  auto result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->requests.size(), 10u);
  EXPECT_EQ(result->metrics.completed, 10);
  EXPECT_EQ(result->warmup_completed, 4);
  EXPECT_EQ(target->requests_seen(), 14u);
}

TEST(LoadgenE2eTest, MaxConcurrencyBoundsRequestsInFlight) {
  auto target = StartTarget();
  LoadOptions o = Options(*target, 30);
  o.max_concurrency = 2;
  auto result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->metrics.completed, 30);
  EXPECT_LE(result->generator.peak_in_flight, 2);
  EXPECT_GE(result->generator.peak_in_flight, 1);
}

TEST(LoadgenE2eTest, SameSeedSendsSameRequests) {
  auto target = StartTarget();
  LoadOptions o = Options(*target, 8);
  o.random.range_ratio = 0.5;
  o.seed = 77;
  auto a = RunLoad(o);
  auto b = RunLoad(o);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(a->requests[i].input_len, b->requests[i].input_len);
    EXPECT_EQ(a->requests[i].tokens, b->requests[i].tokens);  // same prompt and seed
    EXPECT_EQ(a->requests[i].scheduled_s, b->requests[i].scheduled_s);
  }
}

TEST(LoadgenE2eTest, TraceIsReplayedInArrivalOrder) {
  auto target = StartTarget();
  const std::string path = testing::TempDir() + "/" + std::to_string(getpid()) + "-loadgen_trace.jsonl";
  {
    std::ofstream out(path);
    out << "{\"arrival_s\": 0.02, \"input_len\": 9, \"output_len\": 2}\n"
        << "{\"arrival_s\": 0.0, \"input_len\": 5, \"output_len\": 4}\n"
        << "{\"arrival_s\": 0.01, \"input_len\": 7, \"output_len\": 3}\n";
  }
  LoadOptions o = Options(*target, 10);  // more than the trace holds: all rows
  o.dataset = DatasetKind::kTrace;
  o.trace_path = path;
  o.verify = true;
  auto result = RunLoad(o);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->requests.size(), 3u);
  EXPECT_EQ(result->requests[0].input_len, 5);
  EXPECT_EQ(result->requests[1].input_len, 7);
  EXPECT_EQ(result->requests[2].input_len, 9);
  EXPECT_EQ(result->requests[2].output_tokens, 2);
  EXPECT_DOUBLE_EQ(result->requests[2].scheduled_s, 0.02);
  EXPECT_LE(result->requests[0].send_s, result->requests[1].send_s);
  EXPECT_LE(result->requests[1].send_s, result->requests[2].send_s);
  EXPECT_EQ(result->verify_mismatches, 0);
  std::filesystem::remove(path);
}

TEST(LoadgenE2eTest, UnreachableTargetIsUnavailable) {
  int port = 0;
  {
    auto target = StartTarget();
    port = target->port();
  }  // closed again: nothing listens there now
  LoadOptions o;
  o.target = "127.0.0.1:" + std::to_string(port);
  o.num_prompts = 1;
  o.connect_timeout_s = 0.5;
  o.progress = ProgressMode::kOff;
  auto result = RunLoad(o);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
}

TEST(LoadgenE2eTest, InvalidOptionsAreRejectedBeforeSending) {
  LoadOptions o;
  o.num_prompts = 0;
  EXPECT_EQ(RunLoad(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.num_prompts = 1;
  o.random.range_ratio = 2;
  EXPECT_EQ(RunLoad(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::loadgen
