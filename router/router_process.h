#pragma once

#include <string>

#include "absl/status/status.h"
#include "router/router_service.h"

namespace pdserve::router {

struct RouterProcessOptions {
  std::string host = "127.0.0.1";
  int port = 50051;  // 0: pick a free one
  std::string port_file;
  ModelOverrides model;  // the cluster's model: preset, block size, dtype
  RouterOptions router;  // config is resolved from `model`
};

// `pdserve router`: serves Router until SIGINT/SIGTERM. The caller must have blocked those
// signals (service::BlockTerminationSignals) first.
absl::Status RunRouter(RouterProcessOptions options);

}  // namespace pdserve::router
