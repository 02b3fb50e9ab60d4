#include "router/router_control.h"

namespace pdserve::router {

grpc::Status RouterControlService::RegisterWorker(grpc::ServerContext* ctx,
                                                  const v1::RegisterWorkerRequest* request,
                                                  v1::RegisterWorkerResponse* response) {
  if (grpc::Status auth = auth_->Check(*ctx, "RouterControl.RegisterWorker"); !auth.ok()) {
    return auth;
  }
  return router_.RegisterWorker(ctx, request, response);
}

grpc::Status RouterControlService::Heartbeat(grpc::ServerContext* ctx,
                                             const v1::HeartbeatRequest* request,
                                             v1::HeartbeatResponse* response) {
  if (grpc::Status auth = auth_->Check(*ctx, "RouterControl.Heartbeat"); !auth.ok()) return auth;
  return router_.Heartbeat(ctx, request, response);
}

}  // namespace pdserve::router
