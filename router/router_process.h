#pragma once

#include <string>

#include "absl/status/status.h"
#include "router/request_core.h"
#include "router/router_service.h"
#include "service/cluster_auth.h"

namespace pdserve::router {

struct RouterProcessOptions {
  std::string host = "127.0.0.1";  // --listen (alias --host)
  // --advertise: what workers and clients dial (the internal API's port on it is the workers'
  // --router); empty: `host`, which must then not be 0.0.0.0.
  std::string advertise;
  int port = 50051;  // client API (Router); 0: pick a free one
  std::string port_file;
  // Cluster-internal API (RouterControl: worker registration, heartbeats): workers' --router.
  std::string internal_host;  // empty: `host`
  int internal_port = 50052;  // 0: pick a free one
  std::string internal_port_file;
  FrontEndStarter http;            // null: no HTTP API
  std::string http_port_file;      // the HTTP API's bound port, written before port_file
  service::ClusterAuthFlags auth;  // the cluster secret (or --insecure-no-auth)
  ModelOverrides model;            // the cluster's model: preset, block size, dtype
  RouterOptions router;            // config is resolved from `model`, auth from `auth`
};

// `pdserve router`: serves Router on host:port and RouterControl on internal_host:internal_port
// until SIGINT/SIGTERM. The caller must have blocked those signals
// (service::BlockTerminationSignals) first. FailedPrecondition without a cluster secret unless
// --insecure-no-auth.
absl::Status RunRouter(RouterProcessOptions options);

}  // namespace pdserve::router
