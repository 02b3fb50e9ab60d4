// The UCX settings a worker imposes on a shared host (transfer/ucx/ucx_config.h): no sysv (its
// segments are group-writable), network transports only on the advertised host's interface.

#include "transfer/ucx/ucx_config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

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

// A host with InfiniBand: its active ports stay usable next to the advertised interface (else
// UCX would move KV between hosts over tcp on eth0), but not for a loopback-only worker.
TEST(UcxConfigTest, ActiveRdmaPortsStayInTheNetDevices) {
  const std::vector<std::string> ports = {"mlx5_0:1", "mlx5_1:1"};
  absl::StatusOr<UcxSafeConfig> c = SafeUcxConfig(nullptr, nullptr, "10.0.0.7", "eth0", ports);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->net_devices, "eth0,mlx5_0:1,mlx5_1:1");
  EXPECT_EQ(SafeUcxConfig(nullptr, nullptr, "127.0.0.1", "lo", ports)->net_devices, "lo");
  EXPECT_EQ(SafeUcxConfig(nullptr, "eth1", "10.0.0.7", "eth0", ports)->net_devices, "");
}

TEST(UcxConfigTest, RdmaPortsAreTheActiveOnesUnderSysfs) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / absl::StrCat("pdserve-ib-", getpid());
  auto port = [&](const std::string& dev, const std::string& n, const std::string& state) {
    fs::create_directories(root / dev / "ports" / n);
    std::ofstream(root / dev / "ports" / n / "state") << state << "\n";
  };
  port("mlx5_1", "1", "4: ACTIVE");
  port("mlx5_0", "1", "4: ACTIVE");
  port("mlx5_0", "2", "1: DOWN");
  port("bad;name", "1", "4: ACTIVE");  // not a name UCX_NET_DEVICES could carry: skipped
  EXPECT_EQ(RdmaPorts(root.string()), (std::vector<std::string>{"mlx5_0:1", "mlx5_1:1"}));
  fs::remove_all(root);
  EXPECT_TRUE(RdmaPorts(root.string()).empty());  // no such folder: none
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

// NCCL's bootstrap listens on loopback (nccl's peers share this host), unless the operator named
// an interface.
TEST(UcxConfigTest, PresetEnvironmentKeepsNcclsBootstrapOnLoopbackOnlyWhereUnset) {
  unsetenv("NCCL_SOCKET_IFNAME");
  PresetTransportEnvironment();
  ASSERT_NE(std::getenv("NCCL_SOCKET_IFNAME"), nullptr);
  EXPECT_STREQ(std::getenv("NCCL_SOCKET_IFNAME"), "lo");
  setenv("NCCL_SOCKET_IFNAME", "eth7", 1);
  PresetTransportEnvironment();
  EXPECT_STREQ(std::getenv("NCCL_SOCKET_IFNAME"), "eth7");
  unsetenv("NCCL_SOCKET_IFNAME");
}

}  // namespace
}  // namespace pdserve::transfer::ucx
