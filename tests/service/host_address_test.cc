// --listen / --advertise / --host-id: what a process binds, what it registers, which machine it
// says it is on (no processes: the parsing alone).
#include "service/host_address.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/worker_process.h"

namespace pdserve::service {
namespace {

using ::testing::HasSubstr;

TEST(HostAddressTest, ListenTakesIpLiteralsAndDropsIpv6Brackets) {
  EXPECT_EQ(*ParseListenAddress("--listen", "10.213.0.2"), "10.213.0.2");
  EXPECT_EQ(*ParseListenAddress("--listen", "0.0.0.0"), "0.0.0.0");
  EXPECT_EQ(*ParseListenAddress("--listen", "[::1]"), "::1");
  EXPECT_EQ(*ParseListenAddress("--listen", "::1"), "::1");
}

TEST(HostAddressTest, ListenThatIsNotAnAddressIsAClearErrorNamingTheFlag) {
  for (const char* bad : {"999.1.1.1", "localhost", "10.0.0.1:80", "", "10.0.0.1 "}) {
    absl::StatusOr<std::string> s = ParseListenAddress("--listen", bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.status().message(), HasSubstr("--listen"));
  }
}

TEST(HostAddressTest, AdvertiseDefaultsToListenButNeverToEveryInterface) {
  EXPECT_EQ(*ResolveAdvertiseAddress("10.213.0.2", ""), "10.213.0.2");
  absl::StatusOr<std::string> any = ResolveAdvertiseAddress("0.0.0.0", "");
  ASSERT_FALSE(any.ok());
  EXPECT_THAT(any.status().message(), HasSubstr("--advertise"));
  EXPECT_FALSE(ResolveAdvertiseAddress("::", "").ok());
  EXPECT_EQ(*ResolveAdvertiseAddress("0.0.0.0", "10.213.0.3"), "10.213.0.3");
  EXPECT_FALSE(ResolveAdvertiseAddress("10.213.0.2", "0.0.0.0").ok());
}

TEST(HostAddressTest, AdvertiseTakesHostNamesButNotJunk) {
  EXPECT_EQ(*ResolveAdvertiseAddress("0.0.0.0", "decode-0.pdserve.svc"), "decode-0.pdserve.svc");
  EXPECT_EQ(*ResolveAdvertiseAddress("::", "[fd00::3]"), "fd00::3");
  for (const char* bad : {"a b", "-x", "x-", "a..b", "host:80", "x\n", "é"}) {
    EXPECT_FALSE(ResolveAdvertiseAddress("127.0.0.1", bad).ok()) << bad;
  }
}

TEST(HostAddressTest, JoinHostPortBracketsIpv6Only) {
  EXPECT_EQ(JoinHostPort("10.0.0.1", 80), "10.0.0.1:80");
  EXPECT_EQ(JoinHostPort("::1", 80), "[::1]:80");
  EXPECT_EQ(JoinHostPort("node-1", 80), "node-1:80");
}

TEST(HostAddressTest, HostIdDefaultsToTheHostnameAndIsBounded) {
  absl::StatusOr<std::string> id = ResolveHostId("");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_FALSE(id->empty());
  EXPECT_EQ(*ResolveHostId("rack3-node7"), "rack3-node7");
  EXPECT_TRUE(ResolveHostId(std::string(kMaxHostIdBytes, 'h')).ok());
  EXPECT_FALSE(ResolveHostId(std::string(kMaxHostIdBytes + 1, 'h')).ok());
  EXPECT_FALSE(ResolveHostId("a b").ok());
  EXPECT_FALSE(ResolveHostId("a\x1b[31m").ok());
}

TEST(HostAddressTest, WorkerAddressesAreResolvedOnceAndStayPut) {
  WorkerProcessOptions o;
  o.host = "0.0.0.0";
  o.advertise = "10.213.0.3";
  o.host_id = "h2";
  ASSERT_TRUE(ResolveWorkerAddresses(o).ok());
  EXPECT_EQ(o.host, "0.0.0.0");
  EXPECT_EQ(o.advertise, "10.213.0.3");
  ASSERT_TRUE(ResolveWorkerAddresses(o).ok());  // the process functions resolve again
  EXPECT_EQ(o.advertise, "10.213.0.3");
  WorkerProcessOptions defaults;
  ASSERT_TRUE(ResolveWorkerAddresses(defaults).ok());
  EXPECT_EQ(defaults.advertise, "127.0.0.1");  // no listener or address on 0.0.0.0 by default
}

}  // namespace
}  // namespace pdserve::service
