#pragma once

// The prefill worker's gRPC service over a PrefillEngine.

#include <string>

#include "pdserve.grpc.pb.h"
#include "prefill_worker/prefill_engine.h"
#include "service/cluster_auth.h"
#include "service/fast_lane.h"
#include "service/worker_metrics.h"

namespace pdserve::prefill {

struct PrefillServiceOptions {
  std::string worker_id = "prefill-0";
  std::string address;
  // Every RPC is refused (UNAUTHENTICATED) unless it carries the cluster credential.
  std::shared_ptr<const service::ClusterAuth> auth = service::ClusterAuth::Insecure();
  // Where each item's KV transfer is counted (null: nowhere); must outlive the service.
  service::WorkerMetrics* metrics = nullptr;
  // The backend GetStatus reports: the transport's, unless the worker stages its KV through a
  // host pool ("ucx-staged", whose transport is plain ucx; the doctor's staging item reads it).
  std::string reported_backend;
};

class PrefillService final : public v1::PrefillWorker::Service {
 public:
  PrefillService(PrefillEngine& engine, transfer::KvTransport& transport,
                 PrefillServiceOptions options);

  grpc::Status Prefill(grpc::ServerContext* ctx, const v1::PrefillBatchRequest* request,
                       v1::PrefillBatchResponse* response) override;
  grpc::Status Cancel(grpc::ServerContext* ctx, const v1::PrefillCancelRequest* request,
                      v1::PrefillCancelResponse* response) override;
  grpc::Status SetDestinations(grpc::ServerContext* ctx,
                               const v1::PrefillDestinationsRequest* request,
                               v1::PrefillDestinationsResponse* response) override;
  grpc::Status AddPeer(grpc::ServerContext* ctx, const v1::AddPeerRequest* request,
                       v1::AddPeerResponse* response) override;
  grpc::Status RemovePeer(grpc::ServerContext* ctx, const v1::RemovePeerRequest* request,
                          v1::RemovePeerResponse* response) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* request,
                         v1::WorkerStatus* response) override;

  v1::WorkerCapacity Capacity() const;

  // The request cores under both front ends (gRPC above, the fast lane below).
  v1::PrefillBatchResponse RunBatch(const v1::PrefillBatchRequest& request,
                                    const std::function<bool()>& cancelled, absl::Time deadline);
  absl::Status PostDestinations(const v1::PrefillDestinationsRequest& request);
  // Prefill (on a thread of its own) and SetDestinations (on the reader thread) for the fast
  // lane, whose connection the cluster credential opened.
  std::map<service::FastMethod, service::FastLaneServer::Method> FastMethods();

 private:
  // Each item's KV transfer into options_.metrics.
  void CountTransfers(const std::vector<PrefillItemOutcome>& outcomes);

  PrefillEngine& engine_;
  transfer::KvTransport& transport_;
  PrefillServiceOptions options_;
};

}  // namespace pdserve::prefill
