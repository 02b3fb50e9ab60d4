#pragma once

// One item of a prefill batch on its way through RunBatch (run_batch.cc) and SettleBatch
// (settle_batch.cc). Internal to router/.

#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "pdserve.pb.h"
#include "router/router_service.h"

namespace pdserve::router {

struct RouterService::BatchItem {
  std::shared_ptr<Request> request;
  const Placement* placement;
  bool allocated = false;
  uint64_t epoch = 0;  // chosen here (alongside), or the decode worker's (first)
  int64_t allocated_us = 0;
  bool open_early = false;        // no checksum claim expected: open the stream early
  DecodeStream* early = nullptr;  // its decode stream, opened while the prefill runs
  // The Allocate call.
  std::unique_ptr<grpc::ClientContext> ctx;
  v1::AllocateRequest asked;  // lives until the call ends (the callback API reads it then)
  v1::AllocateResponse blocks;
  absl::Status allocate = absl::UnavailableError("it left the cluster");
};

}  // namespace pdserve::router
