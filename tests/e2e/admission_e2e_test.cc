// Malformed and oversized requests get a clear status at once; the queue is bounded.
#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

// One small cluster for every test here: none of them changes its state.
class AdmissionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster::ClusterOptions options = Options("local", 1, 1);
    options.decode_blocks = 16;  // 256 tokens
    cluster_ = Start(options).release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    client_ = std::make_unique<Client>(cluster_->endpoint());
  }

  static cluster::Cluster* cluster_;
  std::unique_ptr<Client> client_;
};
cluster::Cluster* AdmissionTest::cluster_ = nullptr;

TEST_F(AdmissionTest, ZeroMaxTokensIsInvalidArgument) {
  Outcome out = client_->Generate("zero", 10, 0, 1);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(out.status.error_message(), HasSubstr("zero"));
}

TEST_F(AdmissionTest, NegativePromptLenIsInvalidArgument) {
  Outcome out = client_->Generate("neg", -5, 4, 1);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(out.status.error_message(), HasSubstr("prompt_len must be positive"));
}

TEST_F(AdmissionTest, EmptyPromptIsInvalidArgument) {
  Outcome out = client_->Generate("empty", 0, 4, 1);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdmissionTest, PromptBeyondMaxModelLenIsInvalidArgument) {
  Outcome out = client_->Generate("long", 4000, 200, 1);  // tiny: max_model_len 4096
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(out.status.error_message(), HasSubstr("max_model_len"));
}

TEST_F(AdmissionTest, UnknownPresetIsInvalidArgument) {
  v1::GenerateRequest r = Client::Request("preset", 10, 4, 1);
  r.set_preset("gpt-9");
  Outcome out = client_->Generate(r);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(out.status.error_message(), HasSubstr("unknown preset 'gpt-9'"));
}

TEST_F(AdmissionTest, TokenOutsideVocabularyIsInvalidArgument) {
  v1::GenerateRequest r;
  r.set_request_id("vocab");
  r.add_prompt_tokens(5);
  r.add_prompt_tokens(1 << 20);
  r.set_max_tokens(2);
  Outcome out = client_->Generate(r);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdmissionTest, RequestLargerThanEveryDecodePoolIsRejectedAtOnce) {
  Outcome out = client_->Generate("huge", 200, 100, 1);  // 19 blocks > 16
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(out.status.error_message(), HasSubstr("largest decode pool has 16"));
}

TEST_F(AdmissionTest, PromptTextIsServedAndEqualsReference) {
  v1::GenerateRequest r;
  r.set_request_id("text");
  r.set_prompt_text("the quick brown fox jumps over the lazy dog");
  r.set_max_tokens(6);
  r.set_seed(9);
  Outcome out = client_->Generate(r);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  const ModelConfig tiny = *PresetConfig("tiny");
  EXPECT_EQ(out.tokens, model::ReferenceGenerate(model::TokenizeText(r.prompt_text(),
                                                                     tiny.vocab_size),
                                                 6, tiny, 9));
}

// Server-chosen ids are vLLM's `cmpl-<128-bit hex>`: unguessable, and distinct per request.
TEST_F(AdmissionTest, ServerChosenIdsAreRandomCmplIdsAndDistinct) {
  Outcome a = client_->Generate("", 10, 2, 1);
  Outcome b = client_->Generate("", 10, 2, 1);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_THAT(a.request_id, ::testing::MatchesRegex("cmpl-[0-9a-f]{32}"));
  EXPECT_THAT(b.request_id, ::testing::MatchesRegex("cmpl-[0-9a-f]{32}"));
  EXPECT_NE(a.request_id, b.request_id);
  EXPECT_EQ(a.tokens, Expected(10, 2, 1));
}

TEST_F(AdmissionTest, ClientIdInTheServersNamespaceIsInvalidArgument) {
  Outcome out = client_->Generate("cmpl-0123456789abcdef0123456789abcdef", 10, 2, 1);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(out.status.error_message(), HasSubstr("are the server's"));
  Outcome own = client_->Generate("client-cmpl-1", 10, 2, 1);  // elsewhere in an id: fine
  EXPECT_TRUE(own.status.ok()) << own.status.error_message();
}

TEST(QueueBoundTest, RequestBeyondWaitingBoundIsResourceExhausted) {
  cluster::ClusterOptions options = Options("local", 1, 1);
  options.decode_blocks = 8;  // one request of 8 blocks at a time, ~1 s each
  options.decode_args.insert(options.decode_args.end(), {"--min-step-us", "15000"});
  options.router_args = {"--max-waiting", "2"};
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  absl::Notification first_running;
  std::vector<Outcome> out(3);
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    out[0] = client.Generate(Client::Request("q0", 64, 64, 0), [&] { first_running.Notify(); });
  });
  ASSERT_TRUE(first_running.WaitForNotificationWithTimeout(absl::Seconds(60)));
  for (int i = 1; i <= 2; ++i) {
    threads.emplace_back([&, i] { out[i] = client.Generate("q" + std::to_string(i), 64, 64, i); });
  }
  // Both wait for q0's blocks: the queue is at its bound.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    absl::StatusOr<v1::ClusterStatus> status = client.Status();
    if (status.ok() && status->waiting_requests() == 2) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  Outcome rejected = client.Generate("q3", 64, 64, 3);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(rejected.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(rejected.status.error_message(), HasSubstr("q3"));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(out[i].status.ok()) << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, Expected(64, 64, i));
  }
}

}  // namespace
}  // namespace pdserve::e2e
