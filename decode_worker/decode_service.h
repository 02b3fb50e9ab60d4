#pragma once

// The decode worker's gRPC service: Allocate / Decode / Release / GetStatus over a DecodeEngine,
// with the KV transfer's notification as the signal that a request's prompt KV has landed.

#include <atomic>
#include <string>

#include "absl/time/time.h"
#include "decode_worker/decode_engine.h"
#include "pdserve.grpc.pb.h"
#include "transfer/kv_transport.h"

namespace pdserve::decode {

struct DecodeServiceOptions {
  std::string worker_id = "decode-0";
  std::string address;  // host:port, reported in status
  // How long Decode waits for the prefill worker's KV notification when the request names none.
  absl::Duration transfer_timeout = absl::Seconds(30);
  // How often a streaming RPC checks whether its client went away.
  absl::Duration cancel_poll = absl::Milliseconds(50);
};

class DecodeService final : public v1::DecodeWorker::Service {
 public:
  DecodeService(DecodeEngine& engine, transfer::KvTransport& transport,
                DecodeServiceOptions options);

  grpc::Status Allocate(grpc::ServerContext* ctx, const v1::AllocateRequest* request,
                        v1::AllocateResponse* response) override;
  grpc::Status Decode(grpc::ServerContext* ctx, const v1::DecodeRequest* request,
                      grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Release(grpc::ServerContext* ctx, const v1::ReleaseRequest* request,
                       v1::ReleaseResponse* response) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* request,
                         v1::WorkerStatus* response) override;

  v1::WorkerCapacity Capacity() const;

 private:
  DecodeEngine& engine_;
  transfer::KvTransport& transport_;
  DecodeServiceOptions options_;
  std::atomic<uint64_t> served_{0};
};

}  // namespace pdserve::decode
