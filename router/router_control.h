#pragma once

// The router's cluster-internal API (RouterControl: RegisterWorker, Heartbeat), served on its
// own port (--internal-port) apart from the client API, so that an operator can expose the
// client port without the internal one, and so that clients' calls of the internal methods
// get UNIMPLEMENTED. Every call must carry the cluster credential (service/cluster_auth.h);
// a refused call reaches nothing of the router's state.

#include <memory>

#include "pdserve.grpc.pb.h"
#include "router/router_service.h"
#include "service/cluster_auth.h"

namespace pdserve::router {

class RouterControlService final : public v1::RouterControl::Service {
 public:
  // `router` must outlive this service.
  RouterControlService(RouterService& router, std::shared_ptr<const service::ClusterAuth> auth)
      : router_(router), auth_(std::move(auth)) {}

  grpc::Status RegisterWorker(grpc::ServerContext* ctx, const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;

 private:
  RouterService& router_;
  std::shared_ptr<const service::ClusterAuth> auth_;
};

}  // namespace pdserve::router
