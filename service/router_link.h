#pragma once

// A worker's link to the router: registers (retrying until a deadline, since the router may still
// be starting) and then sends heartbeats with the worker's current capacity. When the router
// answers that it does not know the worker (it dropped it, or restarted), the link registers
// again. Used by `pdserve prefill` and `pdserve decode`.
//
// Shutdown: Drain() announces it in the heartbeats (the router then places nothing new on the
// worker) and waits until the router holds no request placed here and the worker is idle.

#include <atomic>
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

// A worker holds no request: nothing running, every block free or quarantined (quarantined
// blocks wait for a writer, not for this worker).
inline bool CapacityIdle(const v1::WorkerCapacity& c) {
  return c.running_requests() == 0 && c.free_blocks() + c.quarantined_blocks() >= c.total_blocks();
}

class RouterLink {
 public:
  using CapacityFn = std::function<v1::WorkerCapacity()>;

  // Registers with the router (retrying until register_timeout) and starts heartbeats.
  static absl::StatusOr<std::unique_ptr<RouterLink>> Start(RouterLinkOptions options,
                                                           CapacityFn capacity);
  ~RouterLink();
  RouterLink(const RouterLink&) = delete;

  // Tells the router this worker is draining (a heartbeat at once, then each interval) and waits
  // until the router reports no request placed on it and `idle()` holds, polling both. A router
  // that cannot be reached, or no longer knows the worker, places nothing here: then `idle()`
  // alone decides. OK when drained; DeadlineExceeded after `grace`, naming what was left. Once
  // called, the link no longer registers again.
  absl::Status Drain(const std::function<bool()>& idle, absl::Duration grace);
  RouterLink& operator=(const RouterLink&) = delete;

 private:
  RouterLink(RouterLinkOptions options, CapacityFn capacity);
  absl::Status Register();
  // One heartbeat; the router's answer.
  absl::StatusOr<v1::HeartbeatResponse> SendHeartbeat();
  void HeartbeatLoop();

  RouterLinkOptions options_;
  CapacityFn capacity_;
  std::unique_ptr<v1::RouterControl::Stub> stub_;
  absl::Duration interval_ = absl::Milliseconds(500);
  std::atomic<bool> draining_{false};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace pdserve::service
