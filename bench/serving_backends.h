#pragma once

// The serving benchmark's backends: how a name the user gives (`local`, `ucx`, `ucx-<tls>`)
// becomes a cluster's transfer backend and environment, the name it is reported under, and
// what a running cluster says about it afterwards.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cluster/cluster.h"

namespace pdserve::bench {

// Whether the linked UCX can register device memory (the libucx-cu13 build, PDSERVE_UCX_ROOT):
// then `ucx` on the GPU puts device memory straight into the decode worker's device pool.
bool UcxTakesDeviceMemory();

// `colocated`: not a transfer backend but the other deployment, the one P/D is measured against
// (issue 15): num_prefill + num_decode colocated workers (`pdserve colocated`: prefill and decode
// take turns on one device and one pool, no KV moves), as many devices as the P/D cluster has.
inline constexpr char kColocatedBackend[] = "colocated";
bool IsColocated(const std::string& backend);

// The name a backend is reported under. On the GPU (--device cuda) `local` runs as cuda-ipc, and
// `ucx` as ucx on device memory where the linked UCX can do that, else as ucx-staged (Debian's
// UCX has no CUDA transports: blocks go D2H into a pinned host pool, UCX puts them into the
// decode worker's host pool, H2D there before decoding).
std::string BackendLabel(const std::string& backend, const std::string& device);

// The label of the backend the transfer comparisons are made against: the first one that is
// not colocated (colocated moves no KV), or the first one when all are.
std::string TransferBaselineLabel(const std::vector<std::string>& backends,
                                  const std::string& device);

// A backend name as the user gives it -> the cluster's transfer backend and environment; for
// `colocated`, its colocated workers (c.num_prefill and c.num_decode must be set already).
absl::Status ConfigureBackend(const std::string& backend, const std::string& device,
                              cluster::ClusterOptions& c);

// What the prefill (or colocated) workers' transfer backend reports it uses ("memcpy", "posix/memory", ...).
std::string Transports(const cluster::Cluster& c);

// Every KV block of every pool that is not free again after a run ("" when none).
std::string LeakedBlocks(const cluster::Cluster& c);

}  // namespace pdserve::bench
