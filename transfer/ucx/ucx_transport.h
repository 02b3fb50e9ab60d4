#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::ucx {

// `ucx`: UCP RMA. Not yet implemented in this revision: MakeUcxTransport returns Unimplemented.
absl::StatusOr<std::unique_ptr<KvTransport>> MakeUcxTransport(const TransportOptions& options);

// Page-aligned private host memory (UCX registers it with ucp_mem_map).
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateUcxPoolMemory(size_t bytes);

}  // namespace pdserve::transfer::ucx
