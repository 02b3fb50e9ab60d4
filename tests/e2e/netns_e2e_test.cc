// Across "hosts" on one machine: the router, a prefill worker and a decode worker each in a
// network namespace of its own (scripts/netns-hosts.sh), KV over UCX on tcp across the veth
// links, every address the registered (advertised) one. Skipped where namespaces cannot be made.
//
// Its own binary: the test's client must dial the router inside the router's namespace, and a
// thread's sockets live in the namespace it is in, so the main thread enters it before gRPC
// starts any thread (which then inherit it). Any earlier gRPC use in the process would break that.

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_client.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/e2e/netns_hosts.h"

namespace pdserve::e2e {
namespace {

// Its own prefix, so that a set made by hand with the default one is never touched.
class NetnsHostsTest : public NetnsHostsFixture {
 protected:
  NetnsHostsTest() : NetnsHostsFixture("pdserve-e2e", "10.213.7", 3) {}
  void EnterRouterNamespace() { EnterNamespace(0); }

  // The router's status once `n` workers registered (DeadlineExceeded after 30 s).
  static absl::StatusOr<v1::ClusterStatus> WaitForWorkers(Client& client, int n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (true) {
      absl::StatusOr<v1::ClusterStatus> status = client.Status();
      if (status.ok() && status->workers_size() == n) return status;
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "workers did not register: ",
            status.ok() ? status->DebugString() : status.status().ToString()));
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
};

TEST_F(NetnsHostsTest, RouterPrefillDecodeInThreeNamespacesServeTheModelsTokens) {
  const std::vector<std::string> common = {"--cluster-secret-file", secret_, "--transfer", "ucx"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), common.begin(), common.end());
    return args;
  };
  Spawn("router", 0, with({"router", "--listen", Host(0), "--port", "50051", "--internal-port",
                           "50052", "--http-port", "-1"}));
  const std::string router = absl::StrCat(Host(0), ":50052");
  const std::vector<std::string> worker = {"--router", router, "--num-blocks", "128",
                                           "--threads", "1", "--metrics-port", "-1"};
  std::vector<std::string> prefill = with({"prefill", "--worker-id", "prefill-0", "--listen",
                                           Host(1), "--host-id", "host-1"});
  prefill.insert(prefill.end(), worker.begin(), worker.end());
  Spawn("prefill-0", 1, prefill);
  // Listens on every interface of its namespace (asked for explicitly), so peers can only find
  // it through the advertised address.
  std::vector<std::string> decode =
      with({"decode", "--worker-id", "decode-0", "--listen", "0.0.0.0", "--advertise", Host(2),
            "--host-id", "host-2", "--poison-freed-kv"});
  decode.insert(decode.end(), worker.begin(), worker.end());
  Spawn("decode-0", 2, decode);

  EnterRouterNamespace();
  Client client(absl::StrCat(Host(0), ":50051"));
  // Ready: both workers registered and answering through the router.
  absl::StatusOr<v1::ClusterStatus> status = WaitForWorkers(client, 2);
  ASSERT_TRUE(status.ok()) << status.status();
  std::map<std::string, const v1::WorkerStatus*> by_id;
  for (const v1::WorkerStatus& w : status->workers()) by_id[w.worker_id()] = &w;
  ASSERT_TRUE(by_id.contains("prefill-0") && by_id.contains("decode-0"));
  // Registered: the advertised addresses (never 0.0.0.0) and the host ids given.
  EXPECT_TRUE(absl::StartsWith(by_id["prefill-0"]->address(), Host(1) + ":"));
  EXPECT_TRUE(absl::StartsWith(by_id["decode-0"]->address(), Host(2) + ":"));
  EXPECT_EQ(by_id["prefill-0"]->host_id(), "host-1");
  EXPECT_EQ(by_id["decode-0"]->host_id(), "host-2");

  const ModelConfig tiny = *PresetConfig("tiny");
  for (int i = 0; i < 4; ++i) {
    const int prompt = 40 + 37 * i;
    const int tokens = 8 + i;
    const uint64_t seed = 1000 + i;
    Outcome o = client.Generate(absl::StrCat("netns-", i), prompt, tokens, seed);
    ASSERT_TRUE(o.status.ok()) << o.status.error_message();
    EXPECT_EQ(o.tokens, Expected(prompt, tokens, seed, tiny)) << "request " << i;
    EXPECT_EQ(o.timeline.transfer_backend(), "ucx");
    EXPECT_GT(o.timeline.kv_bytes(), 0u);
  }
  // The KV went over UCX's tcp transport on the namespace's veth (eth0), not shared memory.
  status = client.Status();
  ASSERT_TRUE(status.ok());
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.worker_id() == "prefill-0") {
      EXPECT_NE(w.transports().find("tcp/eth0"), std::string::npos) << w.transports();
    }
  }
  ExpectAllBlocksFree(client);
  // `pdserve status` (run in the router's namespace, as this thread is) groups by host id.
  std::string printed;
  ASSERT_EQ(Shell(absl::StrCat(PDSERVE_BINARY, " status --endpoint ", Host(0), ":50051"),
                  &printed),
            0)
      << printed;
  const size_t host1 = printed.find("host host-1: 1 worker\n");
  const size_t host2 = printed.find("host host-2: 1 worker\n");
  ASSERT_NE(host1, std::string::npos) << printed;
  ASSERT_NE(host2, std::string::npos) << printed;
  EXPECT_LT(host1, printed.find("prefill-0 "));
  EXPECT_LT(printed.find("prefill-0 "), host2);
  EXPECT_LT(host2, printed.find("decode-0 "));
}

// --transfer auto across hosts: prefill-0 and decode-0 share host-1 (one namespace, one
// /dev/shm), decode-1 is on host-2. The prefill worker moves KV to decode-0 through shared
// memory and to decode-1 over UCX on the veth link, and each request's timeline says which.
TEST_F(NetnsHostsTest, AutoMixesSameHostAndCrossHostPairs) {
  const std::vector<std::string> common = {"--cluster-secret-file", secret_, "--transfer",
                                           "auto"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), common.begin(), common.end());
    return args;
  };
  Spawn("router", 0, with({"router", "--listen", Host(0), "--port", "50051", "--internal-port",
                           "50052", "--http-port", "-1"}));
  const std::string router = absl::StrCat(Host(0), ":50052");
  const std::vector<std::string> worker = {"--router", router, "--num-blocks", "128",
                                           "--threads", "1", "--metrics-port", "-1"};
  auto spawn_worker = [&](const std::string& role, const std::string& id, int host) {
    std::vector<std::string> args = with({role, "--worker-id", id, "--listen", Host(host),
                                          "--host-id", absl::StrCat("host-", host)});
    if (role == "decode") args.push_back("--poison-freed-kv");
    args.insert(args.end(), worker.begin(), worker.end());
    Spawn(id, host, args);
  };
  spawn_worker("prefill", "prefill-0", 1);
  spawn_worker("decode", "decode-0", 1);
  spawn_worker("decode", "decode-1", 2);

  EnterRouterNamespace();
  Client client(absl::StrCat(Host(0), ":50051"));
  absl::StatusOr<v1::ClusterStatus> status = WaitForWorkers(client, 3);
  ASSERT_TRUE(status.ok()) << status.status();
  const ModelConfig tiny = *PresetConfig("tiny");
  std::map<std::string, std::set<std::string>> backends;  // decode worker -> backends seen
  // Pairs at once: placement gives the second of a pair the decode worker the first left.
  for (int pair = 0; pair < 4 && backends.size() < 2; ++pair) {
    Outcome outs[2];
    const int prompts[2] = {40 + pair, 70 + pair};
    std::thread second([&] {
      outs[1] = client.Generate(absl::StrCat("auto-", pair, "b"), prompts[1], 40, 900 + pair);
    });
    outs[0] = client.Generate(absl::StrCat("auto-", pair, "a"), prompts[0], 40, 800 + pair);
    second.join();
    for (int k = 0; k < 2; ++k) {
      ASSERT_TRUE(outs[k].status.ok()) << outs[k].status.error_message();
      EXPECT_EQ(outs[k].tokens, Expected(prompts[k], 40, (k == 0 ? 800 : 900) + pair, tiny));
      backends[outs[k].timeline.decode_worker()].insert(outs[k].timeline.transfer_backend());
      // The timeline names what carried the KV for this pair.
      const std::string& transports = outs[k].timeline.transports();
      if (outs[k].timeline.decode_worker() == "decode-0") {
        EXPECT_EQ(transports, "memcpy");
      } else {
        EXPECT_NE(transports.find("tcp/eth0"), std::string::npos) << transports;
      }
    }
  }
  ASSERT_EQ(backends.size(), 2u) << "the router placed every request on one decode worker";
  EXPECT_EQ(backends["decode-0"], std::set<std::string>{"auto/local"});
  EXPECT_EQ(backends["decode-1"], std::set<std::string>{"auto/ucx"});
  status = client.Status();
  ASSERT_TRUE(status.ok());
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.worker_id() != "prefill-0") continue;
    EXPECT_NE(w.transports().find("local for 1 peer(s)"), std::string::npos) << w.transports();
    EXPECT_NE(w.transports().find("tcp/eth0"), std::string::npos) << w.transports();
  }
  ExpectAllBlocksFree(client);
}

}  // namespace
}  // namespace pdserve::e2e
