#pragma once

// The gRPC Router.Generate front end over the request core (router/request_core.h): converts
// the protobuf request into GenerateParams (ParamsOf, router/request_validation.h) and relays the
// core's token events to the client's stream. Nothing here decides anything about a request; the
// core does.

#include "grpcpp/grpcpp.h"
#include "pdserve.grpc.pb.h"
#include "router/request_core.h"

namespace pdserve::router {

RequestTimes TimesOf(const v1::RequestTimeline& timeline);
v1::RequestTimeline TimelineOf(const RequestTimes& times);

// Writes each event as one GenerateResponse; the client is gone when its call was cancelled or
// a write fails. Lives on the stack of the handler, as the writer it wraps.
class GrpcTokenSink final : public TokenSink {
 public:
  GrpcTokenSink(grpc::ServerContext* ctx, grpc::ServerWriter<v1::GenerateResponse>* writer)
      : ctx_(ctx), writer_(writer) {}
  bool Write(const TokenEvent& event) override;
  bool Cancelled() const override { return ctx_->IsCancelled(); }

 private:
  grpc::ServerContext* ctx_;
  grpc::ServerWriter<v1::GenerateResponse>* writer_;
  v1::GenerateResponse out_;  // reused: its repeated field keeps its capacity
};

}  // namespace pdserve::router
