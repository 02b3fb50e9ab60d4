// Across "hosts" at a size beyond one pair: the router in one namespace, 16 prefill and 16 decode
// workers on four more (4 + 4 each, a host id per namespace), KV over UCX tcp across the veth
// links and between workers of one namespace. Every worker registers, `pdserve status` shows the
// four hosts, every worker serves verified requests, and no worker misses its heartbeats.
// Skipped where namespaces cannot be made. Its own binary: see tests/e2e/netns_hosts.h.

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_client.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/e2e/netns_hosts.h"

namespace pdserve::e2e {
namespace {

constexpr int kHosts = 4;           // worker namespaces h1..h4; the router is alone in h0
constexpr int kPerHost = 4;         // prefill and decode workers each per host
constexpr int kWorkers = 2 * kHosts * kPerHost;
constexpr int kPrompt = 48;
constexpr int kTokens = 12;

class NetnsScaleTest : public NetnsHostsFixture {
 protected:
  NetnsScaleTest() : NetnsHostsFixture("pdscale", "10.213.11", kHosts + 1) {}
};

std::string HostId(int host) { return absl::StrCat("host-", host); }

TEST_F(NetnsScaleTest, SixteenPrefillAndSixteenDecodeWorkersOnFourHostsAllServe) {
  const std::vector<std::string> common = {"--cluster-secret-file", secret_, "--transfer", "ucx"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), common.begin(), common.end());
    return args;
  };
  const absl::Time spawned = absl::Now();
  // One request per prefill batch, so that concurrent requests spread over the prefill workers.
  // Heartbeats every 100 ms, a worker dropped after 2 s without: the run spans several such
  // windows, so that a worker whose heartbeats the router misses at this size is dropped in it.
  Spawn("router", 0, with({"router", "--listen", Host(0), "--port", "50051", "--internal-port",
                           "50052", "--http-port", "-1", "--max-batch-size", "1",
                           "--heartbeat-ms", "100", "--missed-heartbeats", "20"}));
  const std::vector<std::string> worker = {"--router", absl::StrCat(Host(0), ":50052"),
                                           "--num-blocks", "32", "--threads", "1",
                                           "--metrics-port", "-1", "--compute", "roofline"};
  for (int h = 1; h <= kHosts; ++h) {
    for (int i = 0; i < kPerHost; ++i) {
      const int n = (h - 1) * kPerHost + i;
      // A batch lasts 300 ms and a decode step 4 ms: requests sent together are in flight
      // together, so each lands on a worker with nothing placed yet (the scheduler's choice).
      std::vector<std::string> prefill =
          with({"prefill", "--worker-id", absl::StrCat("prefill-", n), "--listen", Host(h),
                "--host-id", HostId(h), "--min-batch-us", "300000"});
      prefill.insert(prefill.end(), worker.begin(), worker.end());
      Spawn(absl::StrCat("prefill-", n), h, prefill);
      std::vector<std::string> decode =
          with({"decode", "--worker-id", absl::StrCat("decode-", n), "--listen", Host(h),
                "--host-id", HostId(h), "--poison-freed-kv", "--min-step-us", "4000"});
      decode.insert(decode.end(), worker.begin(), worker.end());
      Spawn(absl::StrCat("decode-", n), h, decode);
    }
  }

  EnterNamespace(0);
  ASSERT_TRUE(WaitForListener(Host(0), 50051, absl::Seconds(30))) << "the router did not start";
  Client client(absl::StrCat(Host(0), ":50051"));
  absl::StatusOr<v1::ClusterStatus> status;
  const absl::Time ready_by = absl::Now() + absl::Seconds(40);
  while (true) {
    status = client.Status();
    if (status.ok() && status->workers_size() == kWorkers) break;
    ASSERT_LT(absl::Now(), ready_by)
        << "not all workers registered: "
        << (status.ok() ? absl::StrCat(status->workers_size(), " of ", kWorkers)
                        : status.status().ToString());
    absl::SleepFor(absl::Milliseconds(200));
  }
  std::printf("%d workers registered in %.1f s\n", kWorkers,
              absl::ToDoubleSeconds(absl::Now() - spawned));
  std::map<std::string, int> pids;  // a worker that re-registered would show a new pid or drop
  for (const v1::WorkerStatus& w : status->workers()) {
    EXPECT_TRUE(w.live()) << w.worker_id();
    pids[w.worker_id()] = w.pid();
  }
  ASSERT_EQ(pids.size(), static_cast<size_t>(kWorkers));

  // Rounds of as many concurrent requests as there are workers, until every worker served one
  // (the first round does, as placed; the bound only keeps a loaded machine from failing it).
  const ModelConfig tiny = *PresetConfig("tiny");
  int sent = 0;
  int wrong = 0;
  auto all_served = [&](const v1::ClusterStatus& s) {
    for (const v1::WorkerStatus& w : s.workers()) {
      if (w.requests_served() == 0) return false;
    }
    return s.workers_size() == kWorkers;
  };
  for (int round = 0; round < 4; ++round) {
    std::vector<Outcome> out(kWorkers);
    std::vector<std::thread> threads;
    for (int i = 0; i < kWorkers; ++i) {
      threads.emplace_back([&, i, seed = 5000 + sent + i] {
        out[i] = client.Generate(Client::Request(absl::StrCat("scale-", seed), kPrompt, kTokens,
                                                 seed),
                                 nullptr, absl::Seconds(30));
      });
    }
    for (std::thread& t : threads) t.join();
    for (int i = 0; i < kWorkers; ++i) {
      const uint64_t seed = 5000 + sent + i;
      ASSERT_TRUE(out[i].status.ok()) << seed << ": " << out[i].status.error_message();
      if (out[i].tokens != Expected(kPrompt, kTokens, seed, tiny)) wrong++;
      EXPECT_EQ(out[i].timeline.transfer_backend(), "ucx");
    }
    sent += kWorkers;
    status = client.Status();
    ASSERT_TRUE(status.ok()) << status.status();
    if (all_served(*status)) break;
  }
  std::printf("%d verified requests in rounds of %d\n", sent, kWorkers);
  EXPECT_EQ(wrong, 0) << "of " << sent << " requests";
  // Every worker is still registered under its first pid, answered live, served at least one
  // request, and the router never dropped one (heartbeats kept all of them alive).
  ASSERT_EQ(status->workers_size(), kWorkers);
  EXPECT_EQ(status->dropped_workers(), 0u);
  EXPECT_EQ(status->finished_requests(), static_cast<uint64_t>(sent));
  EXPECT_EQ(status->failed_requests(), 0u);
  std::map<v1::WorkerRole, uint64_t> served;  // each request once by a prefill and a decode worker
  for (const v1::WorkerStatus& w : status->workers()) {
    EXPECT_TRUE(w.live()) << w.worker_id();
    EXPECT_EQ(w.pid(), pids[w.worker_id()]) << w.worker_id();
    EXPECT_GE(w.requests_served(), 1u) << w.worker_id();
    served[w.role()] += w.requests_served();
    if (w.role() == v1::WORKER_ROLE_PREFILL) {
      EXPECT_NE(w.transports().find("tcp/eth0"), std::string::npos) << w.transports();
    }
  }
  EXPECT_EQ(served[v1::WORKER_ROLE_PREFILL], static_cast<uint64_t>(sent));
  EXPECT_EQ(served[v1::WORKER_ROLE_DECODE], static_cast<uint64_t>(sent));
  ExpectAllBlocksFree(client);

  // `pdserve status`, in the router's namespace as this thread is: four hosts of 8 workers.
  std::string printed;
  ASSERT_EQ(Shell(absl::StrCat("timeout 30 ", PDSERVE_BINARY, " status --endpoint ", Host(0),
                               ":50051"),
                  &printed),
            0)
      << printed;
  for (int h = 1; h <= kHosts; ++h) {
    EXPECT_NE(printed.find(absl::StrCat("host ", HostId(h), ": ", 2 * kPerHost, " workers\n")),
              std::string::npos)
        << printed;
  }
  EXPECT_NE(printed.find(absl::StrCat("workers: ", kWorkers, " registered, 0 dropped")),
            std::string::npos)
      << printed;
}

}  // namespace
}  // namespace pdserve::e2e
