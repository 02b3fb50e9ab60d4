#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "loadgen/load_client.h"

namespace pdserve::loadgen {

// pdserve's Router.Generate over gRPC (`--backend pdserve`): options.num_channels HTTP/2
// connections to options.target, requests spread round-robin, chunks delivered on gRPC's
// callback threads (loadgen/generate_call.h).
absl::StatusOr<std::unique_ptr<LoadClient>> ConnectGrpcClient(const LoadOptions& options);

}  // namespace pdserve::loadgen
