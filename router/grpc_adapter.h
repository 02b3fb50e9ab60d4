#pragma once

// Conversions between the request core's timeline (router/request_core.h) and its protobuf
// form, for the gRPC front end (router/generate_reactor.h) and the decode stream.

#include "grpcpp/grpcpp.h"
#include "pdserve.grpc.pb.h"
#include "router/request_core.h"

namespace pdserve::router {

RequestTimes TimesOf(const v1::RequestTimeline& timeline);
v1::RequestTimeline TimelineOf(const RequestTimes& times);

}  // namespace pdserve::router
