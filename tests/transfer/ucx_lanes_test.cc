// The lanes UCX reports for an endpoint (ucp_ep_print_info of UCX 1.13, as captured on this
// host), and what pdserve concludes from them.
#include "transfer/ucx/ucx_lanes.h"

#include "gtest/gtest.h"

namespace pdserve::transfer::ucx {
namespace {

// UCX_TLS=^sysv, no peer-failure handling: posix for active messages, cma for puts.
constexpr char kSharedMemory[] = R"(#
# UCP endpoint 
#
#               peer: <no debug data>
#                 lane[0]:  2:posix/memory.0 md[2]          -> md[2]/posix/sysdev[255] am am_bw#0
#                 lane[1]:  3:cma/memory.0 md[3]            -> md[3]/cma/sysdev[255] rma_bw#0
#
#                 am_send: 0..<egr/short>..93..<egr/bcopy>..8256..<rndv>..(inf)
#                  put[0]: 0..<short>..4294967296..<bcopy>..(inf)
#                  rma_bw: mds rndv_rkey_size 9
#
)";

// UCX_TLS=^sysv with peer-failure handling: UCX has to take tcp, even on one host.
constexpr char kTcp[] = R"(#
#                 lane[0]:  1:tcp/lo.0 md[1]                -> md[1]/tcp/sysdev[255] am am_bw#0 keepalive wireup
#                 am_send: 0..<egr/short>..8185..<egr/zcopy>..20553..<rndv>..(inf)
)";

// UCX_TLS=tcp,cma without peer-failure handling: active messages on tcp, puts on cma.
constexpr char kMixed[] = R"(#
#                 lane[0]:  0:tcp/lo.0 md[0]                -> md[0]/tcp/sysdev[255] am am_bw#0 wireup
#                 lane[1]:  1:cma/memory.0 md[1]            -> md[1]/cma/sysdev[255] rma_bw#0
)";

TEST(UcxLanesTest, SharedMemoryLanesParseInOrderWithTheirUses) {
  const std::vector<UcxLane> lanes = ParseLanes(kSharedMemory);
  ASSERT_EQ(lanes.size(), 2u);
  EXPECT_EQ(lanes[0].index, 0);
  EXPECT_EQ(lanes[0].transport, "posix/memory");
  EXPECT_EQ(lanes[0].uses, (std::vector<std::string>{"am", "am_bw"}));
  EXPECT_EQ(lanes[1].index, 1);
  EXPECT_EQ(lanes[1].transport, "cma/memory");
  EXPECT_EQ(lanes[1].uses, (std::vector<std::string>{"rma_bw"}));
  EXPECT_TRUE(AllIntraHost(lanes));
  EXPECT_TRUE(NetworkTransports(lanes).empty());
  EXPECT_EQ(TransportSummary(lanes), "posix/memory+cma/memory");
  EXPECT_EQ(DescribeLanes(lanes), "lane 0 posix/memory (am am_bw), lane 1 cma/memory (rma_bw)");
}

TEST(UcxLanesTest, TcpLaneIsANetworkTransport) {
  const std::vector<UcxLane> lanes = ParseLanes(kTcp);
  ASSERT_EQ(lanes.size(), 1u);
  EXPECT_EQ(lanes[0].uses, (std::vector<std::string>{"am", "am_bw", "keepalive", "wireup"}));
  EXPECT_FALSE(AllIntraHost(lanes));
  EXPECT_EQ(NetworkTransports(lanes), (std::vector<std::string>{"tcp/lo"}));
  EXPECT_EQ(TransportSummary(lanes), "tcp/lo");
}

TEST(UcxLanesTest, OneNetworkLaneAmongSharedMemoryLanesIsNotIntraHost) {
  const std::vector<UcxLane> lanes = ParseLanes(kMixed);
  ASSERT_EQ(lanes.size(), 2u);
  EXPECT_FALSE(AllIntraHost(lanes));
  EXPECT_EQ(NetworkTransports(lanes), (std::vector<std::string>{"tcp/lo"}));
}

TEST(UcxLanesTest, TextWithoutLanesGivesNoneAndIsNotIntraHost) {
  EXPECT_TRUE(ParseLanes("").empty());
  EXPECT_TRUE(ParseLanes("# lane[x]: garbage\n# lane[3]:\n# lane[4]: nodevice md[0]\n").empty());
  EXPECT_FALSE(AllIntraHost({}));
  EXPECT_EQ(TransportSummary({}), "?");
}

// A remote peer on tcp alone while this host has RDMA ports is a path nobody expected; with
// no ports here, or with an RDMA lane, it is not.
TEST(UcxLanesTest, TcpAloneIsUnexpectedOnlyWhereRdmaPortsAreActive) {
  const std::vector<UcxLane> tcp = ParseLanes(kTcp);
  const std::vector<std::string> ports = {"mlx5_0:1"};
  EXPECT_TRUE(TcpDespiteRdma(tcp, ports));
  EXPECT_FALSE(TcpDespiteRdma(tcp, {}));
  const std::vector<UcxLane> rdma = {{0, "rc_mlx5/mlx5_0:1", {"am"}}, {1, "tcp/eth0", {"wireup"}}};
  EXPECT_FALSE(TcpDespiteRdma(rdma, ports));
  EXPECT_FALSE(TcpDespiteRdma(ParseLanes(kSharedMemory), ports));
}

TEST(UcxLanesTest, DeviceTransportsAreIntraHost) {
  EXPECT_TRUE(IsIntraHostTransport("cuda_ipc/cuda"));
  EXPECT_TRUE(IsIntraHostTransport("posix/memory"));
  EXPECT_FALSE(IsIntraHostTransport("tcp/eth0"));
  EXPECT_FALSE(IsIntraHostTransport("rc_mlx5/mlx5_0:1"));
}

}  // namespace
}  // namespace pdserve::transfer::ucx
