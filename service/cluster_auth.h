#pragma once

// Authentication of the cluster-internal gRPC API: the router's RouterControl service and the
// workers' PrefillWorker / DecodeWorker services accept a call only when its metadata carries
// the cluster secret (common/cluster_secret.h) under kClusterCredentialHeader; clients of those
// services (workers -> router, router -> workers) attach it to every call of their channel.
//
//   auth = ClusterAuth::FromFlags({.secret_file = f}, "decode-0");   // once, at process start
//   server side, first line of every handler:
//     if (grpc::Status s = auth->Check(*ctx, "DecodeWorker.Allocate"); !s.ok()) return s;
//   client side:
//     stub = v1::DecodeWorker::NewStub(auth->Channel(address));
//
// Why a check in each handler rather than an AuthMetadataProcessor: gRPC runs that processor
// only on secure server credentials (TLS or local), and the internal API must work between
// hosts without TLS (docs/security.md says what that leaves open). tests/service checks that
// every method of every internal service refuses a call without the credential.
//
// A process started without a secret refuses to start unless --insecure-no-auth was given;
// then Check accepts every call and the process logs a warning saying so.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/cluster_secret.h"

namespace pdserve::service {

inline constexpr char kClusterCredentialHeader[] = "x-pdserve-cluster-credential";

struct ClusterAuthFlags {
  std::string secret_file;        // --cluster-secret-file
  bool insecure_no_auth = false;  // --insecure-no-auth
  // Optional TLS for the internal API (all three or none): this process's certificate and key
  // (PEM; the key file 0600, like the secret) and the CA that signed every member's
  // certificate. Servers then require and verify a client certificate; clients verify the
  // server's certificate against the address they dial (give it a subjectAltName IP/DNS).
  std::string tls_cert;  // --tls-cert
  std::string tls_key;   // --tls-key
  std::string tls_ca;    // --tls-ca
};

class ClusterAuth {
 public:
  // The secret from flags.secret_file; without one, FailedPrecondition unless
  // insecure_no_auth (then a loud warning naming `process`). Both given: InvalidArgument.
  // TLS files: all three or InvalidArgument; unreadable, not PEM, or a key file that group or
  // others can access: FailedPrecondition / InvalidArgument.
  static absl::StatusOr<std::shared_ptr<const ClusterAuth>> FromFlags(const ClusterAuthFlags& flags,
                                                                      const std::string& process);
  static std::shared_ptr<const ClusterAuth> WithSecret(ClusterSecret secret);
  // Accepts every call and attaches nothing (--insecure-no-auth, and unit tests of services).
  static std::shared_ptr<const ClusterAuth> Insecure();

  bool enabled() const { return secret_.has_value(); }
  bool tls() const { return tls_.has_value(); }
  // The text callers present ("" when insecure): also what KV notification senders present.
  std::string credential() const { return secret_ ? secret_->text() : std::string(); }

  // OK when the call's metadata carries the secret (or auth is off); otherwise UNAUTHENTICATED
  // with a message naming the method, and a warning with the peer's address (escaped).
  grpc::Status Check(const grpc::ServerContext& ctx, std::string_view method) const;
  // A channel to `address` whose every call carries the credential (over TLS when configured).
  std::shared_ptr<grpc::Channel> Channel(const std::string& address) const;
  // For the internal API's servers: TLS requiring client certificates when configured,
  // plaintext otherwise.
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;

 private:
  struct TlsFiles {
    std::string cert, key, ca;  // PEM contents
  };
  ClusterAuth(std::optional<ClusterSecret> secret, std::optional<TlsFiles> tls)
      : secret_(std::move(secret)), tls_(std::move(tls)) {}
  static absl::StatusOr<std::optional<TlsFiles>> ReadTls(const ClusterAuthFlags& flags);
  std::optional<ClusterSecret> secret_;
  std::optional<TlsFiles> tls_;
  mutable std::atomic<uint64_t> refused_{0};
};

}  // namespace pdserve::service
