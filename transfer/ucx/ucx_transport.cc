#include "transfer/ucx/ucx_transport.h"

namespace pdserve::transfer::ucx {

absl::StatusOr<std::unique_ptr<KvTransport>> MakeUcxTransport(const TransportOptions& options) {
  return absl::UnimplementedError("the ucx KV transfer backend is not built yet");
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateUcxPoolMemory(size_t bytes) {
  return AllocateHostMemory(bytes);
}

}  // namespace pdserve::transfer::ucx
