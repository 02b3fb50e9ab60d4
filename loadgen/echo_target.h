#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace pdserve::loadgen {

// A trivial Router.Generate server: it streams max_tokens tokens at once, with no model work
// beyond the token rule, so that a load run against it measures the load generator. Used by the
// tests, `pdserve loadgen --target builtin` and `pdserve bench loadgen`.
struct EchoTargetOptions {
  std::string host = "127.0.0.1";
  int port = 0;                 // 0: any free port
  // The model (vocabulary and, with reference_tokens, the token rule), reported by GetStatus
  // like a router's; 0 / empty: the preset's.
  std::string preset = "tiny";
  int block_size = 0;
  std::string dtype;
  int tokens_per_chunk = 1;
  // true: the tokens are model::ReferenceGenerate's (so --verify passes); false: a cheap rule
  // that does not match the model (so --verify must fail).
  bool reference_tokens = true;
  // > 0: every fail_every-th request (1-based arrival order) fails with UNAVAILABLE.
  int fail_every = 0;
};

class EchoTarget {
 public:
  static absl::StatusOr<std::unique_ptr<EchoTarget>> Start(const EchoTargetOptions& options);
  ~EchoTarget();  // shuts the server down, cancelling streams still open
  EchoTarget(const EchoTarget&) = delete;
  EchoTarget& operator=(const EchoTarget&) = delete;

  std::string address() const;  // host:port
  int port() const { return port_; }
  uint64_t requests_seen() const;

  class Service;  // the Router callback service (private to echo_target.cc)

 private:
  EchoTarget() = default;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string host_;
  int port_ = 0;
};

}  // namespace pdserve::loadgen
