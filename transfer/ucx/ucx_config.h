#pragma once

// The UCX settings pdserve imposes for safety on a shared host, computed from the operator's
// environment (UCX_TLS, UCX_NET_DEVICES) and the address the worker advertises. Plain strings:
// UcxContext (ucx_context.cc) applies them with ucp_config_modify before ucp_init.
//
// - No `sysv` transport. UCX 1.13's sysv memory domain creates its segments with mode 0660
//   (group read/write, uct/sm/mm/sysv/mm_sysv.c) and has no option for owner-only: any user of
//   the segment's group could attach a KV pool or UCX's FIFOs. `posix` creates its files with
//   mode 0600 and hands peers /proc/<pid>/fd/<fd> (UCX_POSIX_USE_PROC_LINK=y), which only this
//   user can open; `cma` needs ptrace rights over the peer (same user). They do what sysv did.
// - Network transports only on the interface that carries the advertised address (tcp would
//   otherwise listen on every interface's address, external ones included): UCX_NET_DEVICES.
// The operator's UCX_NET_DEVICES wins (set it to reach peers on other hosts); an operator's
// UCX_TLS loses only `sysv`.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pdserve::transfer::ucx {

struct UcxSafeConfig {
  std::string tls;                 // value for TLS
  std::string net_devices;         // value for NET_DEVICES; empty: leave UCX's (the operator's)
  std::vector<std::string> notes;  // what was changed and why, for the log
};

// `env_tls` / `env_net_devices`: the operator's UCX_TLS / UCX_NET_DEVICES (nullptr: unset).
// `interface_of_host`: the network interface that has `listen_host`'s address ("" when none).
// InvalidArgument when UCX_TLS names nothing but sysv.
// `rdma_ports`: this host's active RDMA ports ("mlx5_0:1", RdmaPorts()); they stay in the
// NET_DEVICES pdserve sets (an RDMA port opens no socket), or UCX would find nothing but tcp on
// the advertised interface and move KV between hosts over it, silently 10x slower.
absl::StatusOr<UcxSafeConfig> SafeUcxConfig(const char* env_tls, const char* env_net_devices,
                                            const std::string& listen_host,
                                            const std::string& interface_of_host,
                                            const std::vector<std::string>& rdma_ports = {});

// The active RDMA ports under `sysfs` (/sys/class/infiniband/<device>/ports/<n>/state says
// "ACTIVE"), as UCX names them ("mlx5_0:1"), sorted; at most 64, names of [A-Za-z0-9_.-].
std::vector<std::string> RdmaPorts(const std::string& sysfs = "/sys/class/infiniband");

// Whether `tls` (UcxSafeConfig::tls, the UCX_TLS in force) lets UCX reach a peer on this host
// through shared memory (posix, cma, knem, xpmem, or an alias or exclusion list that keeps one):
// then same-host peers are connected without UCX's peer-failure handling, which UCX 1.13 has for
// none of those transports, and watched by pid instead (ucx_transport.h).
bool AllowsSharedMemory(const std::string& tls);

// The interface with this IPv4 address ("lo" for 127.0.0.0/8), "" when none or `host` is not
// an IPv4 literal. "0.0.0.0": "" (every interface: the operator's choice).
std::string InterfaceOfHost(const std::string& host);

}  // namespace pdserve::transfer::ucx
