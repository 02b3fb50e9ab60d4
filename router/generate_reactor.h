#pragma once

// Router.Generate on gRPC's callback API: one reactor per call and no thread of its own. The
// request core's threads hand it token events (through a relay the core holds, which outlives
// the reactor); the reactor writes one message at a time and queues the rest, so a slow client
// paces only its own call, and finishes with the core's status once the queue is written. A
// client that goes away cancels its request in the core.

#include "grpcpp/grpcpp.h"
#include "pdserve.grpc.pb.h"
#include "router/request_core.h"

namespace pdserve::router {

// Starts `request` on `core` and returns the call's reactor (gRPC deletes it when it is done).
grpc::ServerWriteReactor<v1::GenerateResponse>* StartGenerate(RequestCore& core,
                                                              const v1::GenerateRequest& request);

}  // namespace pdserve::router
