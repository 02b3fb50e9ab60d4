#pragma once
// For router tests whose workers are stand-ins at real gRPC addresses (the router under test is
// the real one, in process): serving a stand-in on 127.0.0.1 and a worker's registration.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "common/model_config.h"
#include "proto/model_spec.h"
#include "pdserve.grpc.pb.h"
#include "router/router_service.h"

namespace pdserve::router::stand_in {

inline ModelConfig Tiny() { return *PresetConfig("tiny"); }

struct Server {
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

inline Server Serve(grpc::Service* service) {
  Server s;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  s.server = builder.BuildAndStart();
  s.address = "127.0.0.1:" + std::to_string(port);
  return s;
}

// A tiny-preset worker with a 64-block pool and the local transfer backend.
inline v1::RegisterWorkerRequest Registration(const std::string& id, v1::WorkerRole role,
                                              const std::string& address) {
  const ModelConfig config = Tiny();
  v1::RegisterWorkerRequest r;
  r.set_worker_id(id);
  r.set_role(role);
  r.set_address(address);
  r.set_pid(1);
  *r.mutable_model() = ModelSpecOf(config);
  r.mutable_kv_pool()->set_num_blocks(64);
  r.mutable_kv_pool()->set_block_size(static_cast<uint32_t>(config.block_size));
  r.mutable_kv_pool()->set_block_bytes(static_cast<uint64_t>(config.KvBytesPerBlock()));
  r.mutable_kv_pool()->set_transfer_backend("local");
  return r;
}

// Grants every Allocate (the router's epoch, as many blocks as the prompt needs) and Release.
class GrantingDecode final : public v1::DecodeWorker::Service {
 public:
  grpc::Status GetStatus(grpc::ServerContext*, const v1::StatusRequest*,
                         v1::WorkerStatus*) override {
    return grpc::Status::OK;
  }
  grpc::Status Allocate(grpc::ServerContext*, const v1::AllocateRequest* request,
                        v1::AllocateResponse* response) override {
    const int64_t n = Tiny().BlocksForTokens(request->prompt_len());
    for (int64_t i = 0; i < n; ++i) response->mutable_blocks()->add_block_ids(i);
    response->set_epoch(request->epoch() != 0 ? request->epoch() : 1);
    return grpc::Status::OK;
  }
  grpc::Status Release(grpc::ServerContext*, const v1::ReleaseRequest*,
                       v1::ReleaseResponse*) override {
    return grpc::Status::OK;
  }
};

// A request's end as the router reports it: tokens seen, final status.
class Outcome final : public EventSink {
 public:
  bool OnEvent(const TokenEvent& event) override {
    tokens += static_cast<int>(event.tokens.size());
    return true;
  }
  void OnDone(const absl::Status& s) override {
    status = s;
    done.Notify();
  }
  int tokens = 0;
  absl::Status status;
  absl::Notification done;
};

// Registers a prefill and a decode stand-in ("prefill-0", "decode-0") with the router.
inline bool RegisterPair(RouterService& router, const std::string& prefill,
                         const std::string& decode) {
  v1::RegisterWorkerResponse response;
  const v1::RegisterWorkerRequest rp = Registration("prefill-0", v1::WORKER_ROLE_PREFILL, prefill);
  const v1::RegisterWorkerRequest rd = Registration("decode-0", v1::WORKER_ROLE_DECODE, decode);
  return router.RegisterWorker(nullptr, &rp, &response).ok() &&
         router.RegisterWorker(nullptr, &rd, &response).ok();
}

}  // namespace pdserve::router::stand_in
