// The UCX settings a worker imposes on a shared host (transfer/ucx/ucx_config.h): no sysv (its
// segments are group-writable), network transports only on the advertised host's interface.

#include "transfer/ucx/ucx_config.h"

#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::ucx {
namespace {

TEST(UcxConfigTest, NoTlsGivenExcludesSysvAndBindsToTheHostsInterface) {
  absl::StatusOr<UcxSafeConfig> c = SafeUcxConfig(nullptr, nullptr, "127.0.0.1", "lo");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls, "^sysv");
  EXPECT_EQ(c->net_devices, "lo");
}

TEST(UcxConfigTest, OperatorTlsLosesOnlySysv) {
  EXPECT_EQ(SafeUcxConfig("tcp,posix,cma", nullptr, "127.0.0.1", "lo")->tls, "tcp,posix,cma");
  EXPECT_EQ(SafeUcxConfig("sysv,tcp", nullptr, "127.0.0.1", "lo")->tls, "tcp");
  EXPECT_EQ(SafeUcxConfig("sm,tcp", nullptr, "127.0.0.1", "lo")->tls, "posix,cma,tcp");
  EXPECT_EQ(SafeUcxConfig("^ib", nullptr, "127.0.0.1", "lo")->tls, "^ib,sysv");
  EXPECT_EQ(SafeUcxConfig("all", nullptr, "127.0.0.1", "lo")->tls, "^sysv");
  EXPECT_EQ(SafeUcxConfig("sysv", nullptr, "127.0.0.1", "lo").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(UcxConfigTest, OperatorNetDevicesWin) {
  absl::StatusOr<UcxSafeConfig> c = SafeUcxConfig(nullptr, "eth0", "127.0.0.1", "lo");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->net_devices, "");  // UCX keeps the operator's UCX_NET_DEVICES
}

TEST(UcxConfigTest, InterfaceOfHost) {
  EXPECT_EQ(InterfaceOfHost("127.0.0.1"), "lo");
  EXPECT_EQ(InterfaceOfHost("127.0.0.2"), "lo");
  EXPECT_EQ(InterfaceOfHost("0.0.0.0"), "");
  EXPECT_EQ(InterfaceOfHost("not-an-address"), "");
  EXPECT_EQ(InterfaceOfHost("203.0.113.77"), "");  // TEST-NET-3: no interface here has it
}

// The receive segment holds a whole 256 KiB data message (no reassembly copy), unless the
// operator chose one.
TEST(UcxConfigTest, PresetEnvironmentSetsTheTcpSegmentOnlyWhereUnset) {
  unsetenv("UCX_TCP_RX_SEG_SIZE");
  PresetTransportEnvironment();
  ASSERT_NE(std::getenv("UCX_TCP_RX_SEG_SIZE"), nullptr);
  EXPECT_STREQ(std::getenv("UCX_TCP_RX_SEG_SIZE"), "320K");
  setenv("UCX_TCP_RX_SEG_SIZE", "64K", 1);
  PresetTransportEnvironment();
  EXPECT_STREQ(std::getenv("UCX_TCP_RX_SEG_SIZE"), "64K");
  unsetenv("UCX_TCP_RX_SEG_SIZE");
}

}  // namespace
}  // namespace pdserve::transfer::ucx
