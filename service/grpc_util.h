#pragma once

// absl::Status <-> grpc::Status and deadlines: the edge where gRPC meets the rest of the tree.

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace pdserve::service {

inline absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

inline grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// On gRPC's monotonic clock: a deadline taken from the wall clock was already past (or far off)
// for every call made across a step of it (an NTP step, a VM resumed), and each such call
// failed at once with DEADLINE_EXCEEDED: heartbeats, releases, probes, all together.
inline void SetDeadline(grpc::ClientContext& ctx, absl::Duration timeout) {
  ctx.set_deadline(gpr_time_add(
      gpr_now(GPR_CLOCK_MONOTONIC),
      gpr_time_from_nanos(absl::ToInt64Nanoseconds(timeout), GPR_TIMESPAN)));
}

}  // namespace pdserve::service
