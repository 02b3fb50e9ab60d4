#pragma once

// The decode worker's gRPC service: Allocate / Decode / Release / GetStatus over a DecodeEngine,
// with the KV transfer's notification as the signal that a request's prompt KV has landed.
// The notification names the reservation's epoch (transfer/kv_notification.h); Release and the
// periodic Sweep fence the blocks of reservations released before their KV landed
// (decode_engine.h, "Fenced KV").

#include <atomic>
#include <map>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "decode_worker/decode_engine.h"
#include "pdserve.grpc.pb.h"
#include "service/cluster_auth.h"
#include "service/fast_lane.h"
#include "service/worker_metrics.h"
#include "transfer/kv_transport.h"

namespace pdserve::decode {

struct DecodeServiceOptions {
  std::string worker_id = "decode-0";
  std::string address;  // host:port, reported in status
  // How long Decode waits for the prefill worker's KV notification when the request names none.
  absl::Duration transfer_timeout = absl::Seconds(30);
  // How often a streaming RPC checks whether its client went away.
  absl::Duration cancel_poll = absl::Milliseconds(50);
  // Quarantined blocks are freed after this long even without a fence: it must exceed what the
  // prefill side can take to write after the router gave up (a batch plus its 30 s transfer
  // timeout by default), so that the lease frees only blocks nobody will write.
  absl::Duration fence_lease = absl::Seconds(120);
  // Every RPC is refused (UNAUTHENTICATED) unless it carries the cluster credential.
  std::shared_ptr<const service::ClusterAuth> auth = service::ClusterAuth::Insecure();
  // Where tokens sent and requests served are counted (null: nowhere); must outlive the service.
  service::WorkerMetrics* metrics = nullptr;
};

class DecodeService final : public v1::DecodeWorker::Service {
 public:
  // Inputs from another process are bounded here, where they are used.
  static constexpr size_t kMaxRequestIdBytes = 1024;
  // Longest KV wait a Decode may ask for beyond the worker's own --transfer-timeout-s.
  static constexpr absl::Duration kMaxTransferWait = absl::Minutes(10);

  DecodeService(DecodeEngine& engine, transfer::KvTransport& transport,
                DecodeServiceOptions options);

  grpc::Status Allocate(grpc::ServerContext* ctx, const v1::AllocateRequest* request,
                        v1::AllocateResponse* response) override;
  // Allocate's request core under both front ends (gRPC above, the fast lane below).
  absl::StatusOr<v1::AllocateResponse> Allocate(const v1::AllocateRequest& request,
                                                const std::function<bool()>& cancelled);
  // Allocate for the fast lane, whose connection the cluster credential opened.
  std::map<service::FastMethod, service::FastLaneServer::Method> FastMethods();
  grpc::Status Decode(grpc::ServerContext* ctx, const v1::DecodeRequest* request,
                      grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Release(grpc::ServerContext* ctx, const v1::ReleaseRequest* request,
                       v1::ReleaseResponse* response) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* request,
                         v1::WorkerStatus* response) override;

  v1::WorkerCapacity Capacity() const;

  // Periodic upkeep (the worker's reaper thread): expires allocations no Decode claimed within
  // `allocation_lease`, consumes late notifications of released reservations and lifts the
  // quarantines whose writer is fenced, logging each.
  void Sweep(absl::Duration allocation_lease);

 private:
  // A released reservation whose KV had not landed: its notification may still come, and is
  // consumed here so that it does not stay in the transport's inbox.
  void ExpectLateNotification(const std::string& id, uint64_t epoch);
  bool ConsumeNotification(const std::string& id, uint64_t epoch);
  // The KV notification `notification`, at most `timeout`; Cancelled as soon as the call is
  // (a Decode the router opened before the prefill ran waits for the whole prefill).
  absl::Status WaitForKv(grpc::ServerContext& ctx, const std::string& notification,
                         absl::Duration timeout);
  // Calls `done(slice)` (wait at most `slice`; true: the event came) until it says so or fails;
  // Cancelled as soon as the call is, DeadlineExceeded after `timeout`.
  absl::Status WaitInSlices(grpc::ServerContext& ctx, absl::Duration timeout,
                            const std::function<absl::StatusOr<bool>(absl::Duration)>& done);
  // Runs `start` (KvLanded, then the engine's Start) once the KV notification `notification`
  // is there, and returns OK once it ran; the same errors as WaitForKv otherwise (then `start`
  // never runs), and AlreadyExists when another call watches the same notification. Where the
  // transport can (WatchNotification), `start` runs on the thread that receives the
  // notification: the decode loop is woken from there, not after one more hand-off to this
  // call's thread (issue 15: ~20-40 us of the first token on the 2-vCPU host).
  // The caller waits on `stream` meanwhile (`start` must make it show a token or its end).
  absl::Status AwaitLanding(grpc::ServerContext& ctx, const std::string& notification,
                            absl::Duration timeout, DecodeStream& stream,
                            const std::function<bool()>& start);

  DecodeEngine& engine_;
  transfer::KvTransport& transport_;
  DecodeServiceOptions options_;
  std::atomic<uint64_t> served_{0};
  absl::Mutex late_mu_;
  // (request id, epoch) -> until when to look for its notification.
  std::map<std::pair<std::string, uint64_t>, absl::Time> late_ ABSL_GUARDED_BY(late_mu_);
};

}  // namespace pdserve::decode
