// Issue 16: a decode pool that is fuller than the router's accounting (here: another client of
// the decode worker holds most of it) makes the requests placed on it wait again instead of
// failing; they are served, verified, once blocks free. Both ways the router gets decode blocks:
// alongside the Prefill call (the refused items' prefills then ran for nothing and sent nothing,
// router/run_batch.cc) and before it (`--allocate-first`).

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "service/cluster_auth.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

std::string ReadSecret(const std::string& path) {
  std::string text;
  std::ifstream(path) >> text;
  return text;
}

class RequeueTest : public ::testing::TestWithParam<bool> {};

TEST_P(RequeueTest, RequestsRefusedByAFullDecodePoolWaitAndAllSucceedVerified) {
  cluster::ClusterOptions options = Options("local", 1, 1);
  options.decode_blocks = 16;  // 256 tokens
  if (GetParam()) options.router_args.push_back("--allocate-first");
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  std::string decode_address;
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.role() == v1::WORKER_ROLE_DECODE) decode_address = w.address();
  }
  ASSERT_FALSE(decode_address.empty());

  // Another client of the decode worker (with the cluster credential, as a second router
  // would have) reserves 14 of its 16 blocks; the router does not know.
  const std::string secret = ReadSecret(cluster->secret_file());
  auto decode = v1::DecodeWorker::NewStub(
      grpc::CreateChannel(decode_address, grpc::InsecureChannelCredentials()));
  uint64_t hog_epoch = 0;
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata(service::kClusterCredentialHeader, secret);
    v1::AllocateRequest hog;
    hog.set_request_id("hog");
    hog.set_prompt_len(16);
    hog.set_max_tokens(16 * 13);
    v1::AllocateResponse blocks;
    grpc::Status allocated = decode->Allocate(&ctx, hog, &blocks);
    ASSERT_TRUE(allocated.ok()) << allocated.error_message();
    hog_epoch = blocks.epoch();
  }

  // Four requests of 4 blocks each: the router places all four on its 16 "free" blocks, and the
  // worker, with 2 unreserved, refuses every one.
  constexpr int kRequests = 4;
  std::vector<Outcome> out(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] { out[i] = client.Generate("w" + std::to_string(i), 40, 24, i); });
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  uint64_t requeued = 0;
  while (absl::Now() < deadline && requeued < kRequests) {
    absl::StatusOr<v1::ClusterStatus> s = client.Status();
    if (s.ok()) requeued = s->requeued_requests();
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GE(requeued, static_cast<uint64_t>(kRequests));
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata(service::kClusterCredentialHeader, secret);
    v1::ReleaseRequest release;
    release.set_request_id("hog");
    release.set_epoch(hog_epoch);
    release.set_writer_fenced(true);
    v1::ReleaseResponse ignored;
    grpc::Status released = decode->Release(&ctx, release, &ignored);
    ASSERT_TRUE(released.ok()) << released.error_message();
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(out[i].status.ok()) << i << ": " << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, Expected(40, 24, i)) << i;
  }
  ExpectAllBlocksFree(client);
}

INSTANTIATE_TEST_SUITE_P(DecodeBlocks, RequeueTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "AllocateFirst" : "Alongside"; });

}  // namespace
}  // namespace pdserve::e2e
