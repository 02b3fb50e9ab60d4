#pragma once

// The lanes of a UCP endpoint as UCX itself reports them (ucp_ep_print_info: UCX 1.13 has no
// UCP_EP_ATTR_FIELD_TRANSPORTS), and what pdserve concludes from them: which transports carry a
// peer's batches, and whether a peer on this host ended up on a network transport (tcp) where
// shared memory was expected. Plain text in, plain values out: no UCX header here, so the
// parsing is tested on canned output (tests/transfer/ucx_lanes_test.cc).

#include <string>
#include <vector>

namespace pdserve::transfer::ucx {

struct UcxLane {
  int index = 0;
  std::string transport;          // "posix/memory", "cma/memory", "tcp/lo", "cuda_ipc/cuda"
  std::vector<std::string> uses;  // as UCX names them, without "#N": "am", "am_bw", "rma_bw",
                                  // "keepalive", "wireup", ...
};

// The lanes of ucp_ep_print_info's text, in lane order ("#  lane[0]:  2:posix/memory.0 md[2]
// -> md[2]/posix/sysdev[255] am am_bw#0"); lines that do not parse are skipped, and at most
// 32 lanes are kept (UCX has at most 16).
std::vector<UcxLane> ParseLanes(const std::string& print_info);

// Transports that move bytes within one host without a network stack (posix, sysv, cma, knem,
// xpmem, self, cuda_ipc, cuda_copy, gdr_copy, rocm_*): reaching a peer only through these needs
// no peer-failure handling from UCX (the pid watch covers the peer).
bool IsIntraHostTransport(const std::string& transport);

// Every lane is intra-host (and there is at least one).
bool AllIntraHost(const std::vector<UcxLane>& lanes);

// The network transports among `lanes`, in lane order, each once ("tcp/lo"); empty if none.
std::vector<std::string> NetworkTransports(const std::vector<UcxLane>& lanes);

// Whether a peer's network lanes are all tcp although this host has active RDMA ports
// (`rdma_ports`, UcxContext::rdma_ports): the path the operator's hardware was bought for is not
// used (the peer has no RDMA, or UCX_TLS leaves it out). False without network lanes or ports.
bool TcpDespiteRdma(const std::vector<UcxLane>& lanes, const std::vector<std::string>& rdma_ports);

// The distinct transports, in lane order, joined by '+': "posix/memory+cma/memory"; "?" if none.
std::string TransportSummary(const std::vector<UcxLane>& lanes);

// One line per endpoint, lane by lane: "lane 0 posix/memory (am am_bw), lane 1 cma/memory
// (rma_bw)".
std::string DescribeLanes(const std::vector<UcxLane>& lanes);

}  // namespace pdserve::transfer::ucx
