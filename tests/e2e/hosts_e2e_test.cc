// --listen / --advertise end to end, with real processes on 127.0.0.1: an address that does not
// parse, or a listener on every interface with nothing to advertise, stops every process at
// start-up with an error naming the flag; a cluster that listens on 0.0.0.0 hands out (and its
// workers register) only the advertised address. Across namespaces: netns_e2e_test.cc.
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/e2e/e2e_process.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

TEST(HostsE2eTest, AddressThatDoesNotParseStopsEveryProcessAtStartUp) {
  for (const std::string role : {"router", "prefill", "decode", "colocated", "cluster"}) {
    // Without a secret the processes would stop anyway: the address must be what they name.
    const std::string auth = role == "cluster" ? "" : "--insecure-no-auth";
    Exit bad = RunPdserve({role, "--listen", "999.1.1.1", auth});
    EXPECT_NE(bad.code, 0) << role;
    EXPECT_THAT(bad.output, HasSubstr("--listen '999.1.1.1' is not an IPv4 or IPv6 address"))
        << role;
    // --host is the older name of the same flag.
    Exit old = RunPdserve({role, "--host", "not-an-ip", auth});
    EXPECT_NE(old.code, 0) << role;
    EXPECT_THAT(old.output, HasSubstr("--listen 'not-an-ip'")) << role;
    Exit any = RunPdserve({role, "--listen", "0.0.0.0", auth});
    EXPECT_NE(any.code, 0) << role;
    EXPECT_THAT(any.output, HasSubstr("pass --advertise")) << role;
  }
  Exit junk = RunPdserve({"decode", "--advertise", "'a;b'", "--insecure-no-auth"});
  EXPECT_NE(junk.code, 0);
  EXPECT_THAT(junk.output, HasSubstr("--advertise 'a;b' is neither an IP address nor a host"));
}

TEST(HostsE2eTest, ClusterOnEveryInterfaceRegistersAndHandsOutTheAdvertisedAddress) {
  cluster::ClusterOptions o = Options("ucx", 1, 1);
  o.host = "0.0.0.0";
  o.advertise = "127.0.0.1";
  std::unique_ptr<cluster::Cluster> c = Start(o);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(absl::StartsWith(c->endpoint(), "127.0.0.1:")) << c->endpoint();
  Client client(c->endpoint());
  Outcome out = client.Generate("hosts-0", 60, 6, 77);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.tokens, Expected(60, 6, 77));
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->workers_size(), 2);
  for (const v1::WorkerStatus& w : status->workers()) {
    EXPECT_TRUE(absl::StartsWith(w.address(), "127.0.0.1:")) << w.worker_id() << " " << w.address();
    EXPECT_FALSE(w.host_id().empty()) << w.worker_id();  // the hostname by default
  }
  ExpectAllBlocksFree(client);
}

// --transfer auto on one machine, with two host ids: the prefill worker reaches the decode worker
// that names its host through shared memory and the other through UCX, per pair, and every
// request's timeline says which; tokens are the model's either way.
TEST(HostsE2eTest, AutoMovesKvLocallyToTheSameHostAndOverUcxToTheOther) {
  cluster::ClusterOptions o = Options("auto", 1, 2);
  o.prefill_args = {"--host-id", "host-a"};
  o.decode_worker_args = {{"--host-id", "host-a"}, {"--host-id", "host-b"}};
  std::unique_ptr<cluster::Cluster> c = Start(o);
  ASSERT_NE(c, nullptr);
  Client client(c->endpoint());
  std::map<std::string, std::set<std::string>> backends;  // decode worker -> backends seen
  // Pairs at once: placement gives the second of a pair the decode worker with more free
  // blocks, the one the first did not take.
  for (int pair = 0; pair < 4 && backends.size() < 2; ++pair) {
    Outcome outs[2];
    std::thread second(
        [&] { outs[1] = client.Generate(absl::StrCat("auto-", pair, "b"), 48, 40, 400 + pair); });
    outs[0] = client.Generate(absl::StrCat("auto-", pair, "a"), 40, 40, 300 + pair);
    second.join();
    for (int k = 0; k < 2; ++k) {
      ASSERT_TRUE(outs[k].status.ok()) << outs[k].status.error_message();
      EXPECT_EQ(outs[k].tokens, Expected(k == 0 ? 40 : 48, 40, (k == 0 ? 300 : 400) + pair));
      backends[outs[k].timeline.decode_worker()].insert(outs[k].timeline.transfer_backend());
      if (outs[k].timeline.transfer_backend() == "auto/local") {
        EXPECT_EQ(outs[k].timeline.transports(), "memcpy");
      } else {
        EXPECT_NE(outs[k].timeline.transports(), "");  // UCX's lanes on loopback
      }
    }
  }
  ASSERT_EQ(backends.size(), 2u) << "the router placed every request on one decode worker";
  EXPECT_EQ(backends["decode-0"], std::set<std::string>{"auto/local"});
  EXPECT_EQ(backends["decode-1"], std::set<std::string>{"auto/ucx"});
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.worker_id() != "prefill-0") continue;
    EXPECT_THAT(w.transports(), HasSubstr("local for 1 peer(s)")) << w.transports();
    EXPECT_THAT(w.transports(), HasSubstr("ucx for 1 peer(s)")) << w.transports();
  }
  ExpectAllBlocksFree(client);
}

}  // namespace
}  // namespace pdserve::e2e
