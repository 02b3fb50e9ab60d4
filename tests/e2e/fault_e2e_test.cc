// Faults with real processes: a worker SIGKILLed under load fails exactly the requests it held
// (UNAVAILABLE naming the request), the others finish with the right tokens, the router keeps
// serving, nothing hangs and no block stays taken on the survivors. A client that goes away
// frees its blocks.
#include <signal.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

struct Load {
  std::vector<Outcome> out;
  std::vector<std::thread> threads;
  std::atomic<int> started{0};  // requests that received their first tokens
  void Join() {
    for (std::thread& t : threads) t.join();
  }
};

// n requests of 32 + max_tokens tokens, seeds 200 + i.
void StartLoad(Client& client, Load& load, int n, int max_tokens) {
  load.out.resize(n);
  for (int i = 0; i < n; ++i) {
    load.threads.emplace_back([&client, &load, i, max_tokens] {
      load.out[i] = client.Generate(Client::Request("L" + std::to_string(i), 32, max_tokens, 200 + i),
                                    [&load] { load.started++; });
    });
  }
}

// Every request either equals the reference or ended UNAVAILABLE naming itself; returns how many
// failed.
int CheckOutcomes(const Load& load, int max_tokens) {
  int failed = 0;
  for (size_t i = 0; i < load.out.size(); ++i) {
    const Outcome& o = load.out[i];
    const std::string id = "L" + std::to_string(i);
    if (o.status.ok()) {
      EXPECT_EQ(o.tokens, Expected(32, max_tokens, 200 + i)) << id;
    } else {
      failed++;
      EXPECT_EQ(o.status.error_code(), grpc::StatusCode::UNAVAILABLE)
          << id << ": " << o.status.error_message();
      EXPECT_THAT(o.status.error_message(), HasSubstr(id));
    }
  }
  return failed;
}

TEST(FaultTest, KilledDecodeWorkerFailsOnlyItsRequestsWithUnavailable) {
  cluster::ClusterOptions options = Options("local", 1, 2);
  options.decode_args.insert(options.decode_args.end(), {"--min-step-us", "3000"});  // 400 tokens: over a second of decoding
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  Load load;
  StartLoad(client, load, 8, 400);
  ASSERT_TRUE(WaitFor([&] { return load.started == 8; }, absl::Seconds(60)));
  ASSERT_TRUE(cluster->Kill("decode-0", SIGKILL).ok());
  load.Join();
  const int failed = CheckOutcomes(load, 400);
  EXPECT_GT(failed, 0);
  EXPECT_LT(failed, 8);  // the requests on decode-1 finished
  for (const Outcome& o : load.out) {
    if (o.status.ok()) EXPECT_EQ(o.timeline.decode_worker(), "decode-1");
  }
}

TEST(FaultTest, RouterKeepsServingAfterDecodeWorkerKilled) {
  cluster::ClusterOptions options = Options("local", 1, 2);
  options.decode_args.insert(options.decode_args.end(), {"--min-step-us", "3000"});
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  Load load;
  StartLoad(client, load, 6, 300);
  ASSERT_TRUE(WaitFor([&] { return load.started == 6; }, absl::Seconds(60)));
  ASSERT_TRUE(cluster->Kill("decode-0", SIGKILL).ok());
  load.Join();
  for (int i = 0; i < 4; ++i) {
    Outcome after = client.Generate("after" + std::to_string(i), 50, 10, 300 + i);
    ASSERT_TRUE(after.status.ok()) << after.status.error_message();
    EXPECT_EQ(after.tokens, Expected(50, 10, 300 + i));
    EXPECT_EQ(after.timeline.decode_worker(), "decode-1");
  }
  ExpectAllBlocksFree(client);  // the survivors' pools; decode-0 is gone from the cluster
}

TEST(FaultTest, KilledPrefillWorkerFailsOnlyItsRequestsWithUnavailable) {
  cluster::ClusterOptions options = Options("local", 2, 1);
  options.prefill_args = {"--min-batch-us", "1500000"};  // batches in flight for 1.5 s
  options.router_args = {"--max-batch-size", "2"};
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  Load load;
  StartLoad(client, load, 8, 20);
  // Wait until prefill-0 holds batches, then kill it.
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<v1::ClusterStatus> s = client.Status();
        if (!s.ok()) return false;
        for (const v1::WorkerStatus& w : s->workers()) {
          if (w.worker_id() == "prefill-0" && w.capacity().running_requests() > 0) return true;
        }
        return false;
      },
      absl::Seconds(60)));
  ASSERT_TRUE(cluster->Kill("prefill-0", SIGKILL).ok());
  load.Join();
  const int failed = CheckOutcomes(load, 20);
  EXPECT_GT(failed, 0);
  EXPECT_LT(failed, 8);
  for (const Outcome& o : load.out) {
    if (o.status.ok()) EXPECT_EQ(o.timeline.prefill_worker(), "prefill-1");
  }
}

TEST(FaultTest, DecodeBlocksOfRequestsLostWithPrefillWorkerAreFreed) {
  cluster::ClusterOptions options = Options("local", 2, 1);
  options.prefill_args = {"--min-batch-us", "1500000"};
  options.router_args = {"--max-batch-size", "2"};
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  Load load;
  StartLoad(client, load, 4, 10);
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<v1::ClusterStatus> s = client.Status();
        return s.ok() && s->prefilling_requests() == 4;
      },
      absl::Seconds(60)));
  ASSERT_TRUE(cluster->Kill("prefill-0", SIGKILL).ok());
  load.Join();
  Outcome after = client.Generate("after", 40, 5, 7);
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.tokens, Expected(40, 5, 7));
  ExpectAllBlocksFree(client);
}

int DecodeWorkers(Client& client) {
  absl::StatusOr<v1::ClusterStatus> s = client.Status();
  if (!s.ok()) return -1;
  int n = 0;
  for (const v1::WorkerStatus& w : s->workers()) n += w.role() == v1::WORKER_ROLE_DECODE;
  return n;
}

TEST(FaultTest, SilentWorkerIsDroppedAndRejoinsWhenItResumes) {
  cluster::ClusterOptions options = Options("local", 1, 2);
  options.router_args = {"--heartbeat-ms", "100", "--missed-heartbeats", "5"};
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  ASSERT_TRUE(cluster->Kill("decode-1", SIGSTOP).ok());
  EXPECT_TRUE(WaitFor([&] { return DecodeWorkers(client) == 1; }, absl::Seconds(30)));
  Outcome during = client.Generate("during", 30, 5, 1);
  ASSERT_TRUE(during.status.ok()) << during.status.error_message();
  EXPECT_EQ(during.timeline.decode_worker(), "decode-0");
  ASSERT_TRUE(cluster->Kill("decode-1", SIGCONT).ok());
  EXPECT_TRUE(WaitFor([&] { return DecodeWorkers(client) == 2; }, absl::Seconds(30)));
}

TEST(FaultTest, ClientCancelFreesDecodeBlocks) {
  cluster::ClusterOptions options = Options("local", 1, 1);
  options.decode_args.insert(options.decode_args.end(), {"--min-step-us", "3000"});
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  auto stub = v1::Router::NewStub(
      grpc::CreateChannel(cluster->endpoint(), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    auto reader = stub->Generate(&ctx, Client::Request("cancelled", 64, 2000, 1));
    v1::GenerateResponse chunk;
    ASSERT_TRUE(reader->Read(&chunk));  // decoding
    ctx.TryCancel();
    while (reader->Read(&chunk)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  Client client(cluster->endpoint());
  // The router notices the cancel between tokens and releases the request's blocks.
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<v1::ClusterStatus> s = client.Status();
        return s.ok() && s->running_requests() == 0;
      },
      absl::Seconds(30)));
  ExpectAllBlocksFree(client);
}

}  // namespace
}  // namespace pdserve::e2e
