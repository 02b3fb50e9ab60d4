#pragma once

// The model a Router endpoint serves, read from its GetStatus: clients recompute expected tokens
// with the cluster's actual config (preset, block size, dtype, layers, max length), not with a
// preset they assume. Used by `pdserve loadgen --verify` and `pdserve generate --verify`.

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model_config.h"
#include "pdserve.grpc.pb.h"

namespace pdserve::loadgen {

// The model of a ClusterStatus: its model spec; a status without one (a router older than the
// spec) stands for its preset's defaults. InvalidArgument when neither resolves.
absl::StatusOr<ModelConfig> ModelOfStatus(const v1::ClusterStatus& status);

// Calls GetStatus on `stub` with `timeout`; the RPC's error (Unavailable, Unimplemented, ...)
// with "reading the target's model" in front, or the model.
absl::StatusOr<ModelConfig> FetchTargetModel(v1::Router::Stub& stub, absl::Duration timeout);

}  // namespace pdserve::loadgen
