// Early decode streams (router/router_service.h): once the router knows a prefill worker sends
// no checksum claim for a prompt size, it opens a request's Decode stream while the prefill
// runs. The stream must reach the decode worker before the KV lands, and every fault rule
// still holds: a prefill that fails ends the request with the prefill's error and frees its
// decode blocks; a client that leaves during the prefill gets Cancelled and frees them too.
#include <signal.h>

#include <fstream>
#include <iterator>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/read_file.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

using ::pdserve::testing_util::ReadFile;

// The decode worker's pool has every block free and nothing reserved or running.
void ExpectDecodeBlocksFree(Client& client) {
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  int decode = 0;
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.role() != v1::WORKER_ROLE_DECODE) continue;
    decode++;
    EXPECT_EQ(w.capacity().free_blocks(), w.capacity().total_blocks()) << w.worker_id();
    EXPECT_EQ(w.capacity().quarantined_blocks(), 0u) << w.worker_id();
    EXPECT_EQ(w.reserved_blocks(), 0u) << w.worker_id();
  }
  EXPECT_EQ(decode, 1);
}

// One prefill worker whose batches last `batch_us`, one decode worker. With real compute an
// item's KV is sent before the batch's padding, with roofline compute after it (at the end of
// the modelled batch).
std::unique_ptr<cluster::Cluster> SlowPrefillCluster(int batch_us,
                                                     const std::string& compute = "real") {
  cluster::ClusterOptions options = Options("local", 1, 1);
  options.compute = compute;
  options.prefill_args = {"--min-batch-us", std::to_string(batch_us)};
  return Start(options);
}

TEST(EarlyStreamTest, DecodeStreamReachesTheDecodeWorkerBeforeTheKvLands) {
  auto cluster = SlowPrefillCluster(200'000);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  // Nothing known of the prefill worker yet: the stream opens once the prefill answered.
  Outcome first = client.Generate("first", 32, 6, 3);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.tokens, Expected(32, 6, 3));
  EXPECT_GT(first.timeline.decode_admitted_us(), first.timeline.transfer_end_us());
  // It answered a 32-token prompt without a claim: prompts up to 32 tokens open early.
  for (int prompt_len : {32, 9}) {
    Outcome early = client.Generate("early-" + std::to_string(prompt_len), prompt_len, 6, 4);
    ASSERT_TRUE(early.status.ok()) << early.status.error_message();
    EXPECT_EQ(early.tokens, Expected(prompt_len, 6, 4));
    // The transfer's end is taken after the batch's 200 ms padding; the call came before.
    EXPECT_LT(early.timeline.decode_admitted_us(), early.timeline.transfer_end_us()) << prompt_len;
    EXPECT_LE(early.timeline.decode_admitted_us(), early.timeline.kv_landed_us()) << prompt_len;
    EXPECT_GE(early.timeline.first_token_relayed_us(), early.timeline.first_token_us());
  }
  // A longer prompt than any answered yet: opened afterwards again.
  Outcome longer = client.Generate("longer", 40, 6, 5);
  ASSERT_TRUE(longer.status.ok()) << longer.status.error_message();
  EXPECT_EQ(longer.tokens, Expected(40, 6, 5));
  EXPECT_GT(longer.timeline.decode_admitted_us(), longer.timeline.transfer_end_us());
  ExpectAllBlocksFree(client);
}

// Real compute: the KV lands (and the decode worker may finish) before the prefill worker dies
// in its batch's padding; the tokens are never relayed, the request fails with the prefill's
// error. Roofline: the KV never lands; the decode worker's wait is cancelled.
class EarlyStreamFailureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EarlyStreamFailureTest, PrefillFailingUnderAnEarlyStreamFailsTheRequestAndFreesItsBlocks) {
  auto cluster = SlowPrefillCluster(1'500'000, GetParam());
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  Outcome warm = client.Generate("warm", 32, 4, 1);
  ASSERT_TRUE(warm.status.ok()) << warm.status.error_message();
  Outcome failed;
  std::thread request([&] { failed = client.Generate("early-fail", 32, 4, 2); });
  // Killed in the middle of the batch: the stream, opened right after the allocation, waits.
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<v1::ClusterStatus> s = client.Status();
        return s.ok() && s->prefilling_requests() == 1;
      },
      absl::Seconds(30)));
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_TRUE(cluster->Kill("prefill-0", SIGKILL).ok());
  request.join();
  EXPECT_EQ(failed.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << failed.status.error_message();
  EXPECT_THAT(failed.status.error_message(), HasSubstr("early-fail"));
  EXPECT_THAT(failed.status.error_message(), HasSubstr("prefill worker prefill-0"));
  EXPECT_TRUE(failed.tokens.empty());
  if (GetParam() == "roofline") {
    // The decode worker saw its call cancelled while it waited for the KV.
    const std::string log = cluster->log_dir() + "/decode-0.log";
    EXPECT_TRUE(WaitFor(
        [&] {
          return ReadFile(log).find("request early-fail: cancelled by the router while waiting "
                                    "for its KV") != std::string::npos;
        },
        absl::Seconds(10)));
  }
  ExpectDecodeBlocksFree(client);
}

INSTANTIATE_TEST_SUITE_P(Compute, EarlyStreamFailureTest, ::testing::Values("real", "roofline"));

TEST(EarlyStreamTest, ClientLeavingDuringThePrefillIsCancelledAndFreesItsBlocks) {
  auto cluster = SlowPrefillCluster(1'000'000);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  Outcome warm = client.Generate("warm", 32, 4, 1);
  ASSERT_TRUE(warm.status.ok()) << warm.status.error_message();
  auto stub = v1::Router::NewStub(
      grpc::CreateChannel(cluster->endpoint(), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    auto reader = stub->Generate(&ctx, Client::Request("left", 32, 4, 2));
    ASSERT_TRUE(WaitFor(
        [&] {
          absl::StatusOr<v1::ClusterStatus> s = client.Status();
          return s.ok() && s->prefilling_requests() == 1;
        },
        absl::Seconds(30)));
    ctx.TryCancel();
    v1::GenerateResponse chunk;
    while (reader->Read(&chunk)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The router ends the request once the prefill answered, releasing its blocks.
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<v1::ClusterStatus> s = client.Status();
        return s.ok() && s->running_requests() == 0 && s->prefilling_requests() == 0;
      },
      absl::Seconds(30)));
  ExpectAllBlocksFree(client);
  Outcome after = client.Generate("after", 32, 4, 3);
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.tokens, Expected(32, 4, 3));
}

}  // namespace
}  // namespace pdserve::e2e
