#pragma once

// A worker's link to the router: registers (retrying until a deadline, since the router may still
// be starting) and then sends heartbeats with the worker's current capacity. When the router
// answers that it does not know the worker (it dropped it, or restarted), the link registers
// again. Used by `pdserve prefill` and `pdserve decode`.

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pdserve.grpc.pb.h"
#include "service/cluster_auth.h"

namespace pdserve::service {

struct RouterLinkOptions {
  std::string router_address;  // host:port of the router's internal API (RouterControl)
  // Attaches the cluster credential to every call (null: none).
  std::shared_ptr<const ClusterAuth> auth;
  v1::RegisterWorkerRequest registration;
  absl::Duration register_timeout = absl::Seconds(30);
  absl::Duration rpc_timeout = absl::Seconds(10);
};

class RouterLink {
 public:
  using CapacityFn = std::function<v1::WorkerCapacity()>;

  // Registers with the router (retrying until register_timeout) and starts heartbeats.
  static absl::StatusOr<std::unique_ptr<RouterLink>> Start(RouterLinkOptions options,
                                                           CapacityFn capacity);
  ~RouterLink();
  RouterLink(const RouterLink&) = delete;
  RouterLink& operator=(const RouterLink&) = delete;

 private:
  RouterLink(RouterLinkOptions options, CapacityFn capacity);
  absl::Status Register();
  void HeartbeatLoop();

  RouterLinkOptions options_;
  CapacityFn capacity_;
  std::unique_ptr<v1::RouterControl::Stub> stub_;
  absl::Duration interval_ = absl::Milliseconds(500);
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace pdserve::service
