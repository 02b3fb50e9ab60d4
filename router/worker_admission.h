#pragma once

// Whether the router takes a worker's registration: the worker must serve the router's model
// exactly (preset, block size, dtype, layers, max length), because the synthetic model's tokens
// depend on all of it (dtype through the checksum of stored KV bytes, block size through the KV
// pool's layout) and KV moves between pools block by block. A worker that differs is refused at
// once, not discovered later as wrong tokens or a failed transfer.

#include "absl/status/status.h"
#include "common/model_config.h"
#include "pdserve.pb.h"

namespace pdserve::router {

// OK when `request`'s model and KV pool fit `cluster`. InvalidArgument for a registration
// without id, address or role, or with a model spec that does not resolve; FailedPrecondition,
// naming the worker, both models and the fields that differ, for a worker serving another model
// or a pool whose blocks are not this model's blocks. A registration without a model spec
// (older workers) is taken as the preset's defaults.
inline constexpr size_t kMaxWorkerIdBytes = 128;
inline constexpr size_t kMaxWorkerAddressBytes = 256;
inline constexpr size_t kMaxPoolDescriptorBytes = 64 << 10;
inline constexpr size_t kMaxGpuIdBytes = 64;  // a PCI bus id is 16
inline constexpr int kMaxNumaNode = 1023;

// InvalidArgument too for an id, address or host id that is not printable ASCII or is longer
// than its bound (service::kMaxHostIdBytes for the host id; empty is taken as unknown), or a
// pool descriptor over kMaxPoolDescriptorBytes, a gpu id over kMaxGpuIdBytes or not printable,
// or a numa_node outside 0..kMaxNumaNode.
absl::Status CheckWorkerRegistration(const v1::RegisterWorkerRequest& request,
                                     const ModelConfig& cluster);

}  // namespace pdserve::router
