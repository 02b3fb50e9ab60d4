#pragma once
// For router tests whose workers are stand-ins at real gRPC addresses (the router under test is
// the real one, in process): serving a stand-in on 127.0.0.1 and a worker's registration.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "common/model_config.h"
#include "proto/model_spec.h"
#include "pdserve.grpc.pb.h"

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

}  // namespace pdserve::router::stand_in
