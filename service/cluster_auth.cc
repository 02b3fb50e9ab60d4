#include "service/cluster_auth.h"

#include <grpcpp/support/client_interceptor.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pdserve::service {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag, bool is_key) {
  std::ifstream in(path);
  if (!in) return absl::FailedPreconditionError(absl::StrCat(flag, ": cannot read ", path));
  if (is_key) {
    // Like the secret: whoever reads the key is a cluster member.
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          flag, " ", path, " is accessible by group or others; run: chmod 600 ", path));
    }
  }
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " is not a PEM file"));
  }
  return text.str();
}

// Adds the credential to the initial metadata of every call on the channel.
class CredentialInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit CredentialInterceptor(const std::string* credential) : credential_(credential) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kClusterCredentialHeader, *credential_);
    }
    methods->Proceed();
  }

 private:
  const std::string* credential_;
};

class CredentialInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit CredentialInterceptorFactory(std::string credential)
      : credential_(std::move(credential)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new CredentialInterceptor(&credential_);  // gRPC owns and deletes it
  }

 private:
  const std::string credential_;  // lives as long as the channel (which owns the factory)
};

}  // namespace

absl::StatusOr<std::shared_ptr<const ClusterAuth>> ClusterAuth::FromFlags(
    const ClusterAuthFlags& flags, const std::string& process) {
  if (!flags.secret_file.empty() && flags.insecure_no_auth) {
    return absl::InvalidArgumentError(
        "--cluster-secret-file and --insecure-no-auth exclude each other");
  }
  absl::StatusOr<std::optional<TlsFiles>> tls = ReadTls(flags);
  if (!tls.ok()) return tls.status();
  if (!flags.secret_file.empty()) {
    absl::StatusOr<ClusterSecret> secret = ClusterSecret::ReadFile(flags.secret_file);
    if (!secret.ok()) return secret.status();
    return std::shared_ptr<const ClusterAuth>(new ClusterAuth(std::move(*secret), std::move(*tls)));
  }
  if (!flags.insecure_no_auth) {
    return absl::FailedPreconditionError(
        absl::StrCat(process,
                     ": no cluster secret. Give --cluster-secret-file FILE (a 0600 file with at "
                     "least 32 characters, e.g. `openssl rand -hex 32 > FILE; chmod 600 FILE`, the "
                     "same file for the router and every worker), or --insecure-no-auth to let "
                     "anyone who can reach the cluster-internal port act as a worker or router "
                     "(docs/security.md)"));
  }
  ComponentLogger("service")->warn(
      "{}: --insecure-no-auth: the cluster-internal API is NOT authenticated. Any process that "
      "can reach its port can register workers, read prompts and forge tokens. Use only on a "
      "machine and network no one else can reach (docs/security.md).",
      process);
  return std::shared_ptr<const ClusterAuth>(new ClusterAuth(std::nullopt, std::move(*tls)));
}

absl::StatusOr<std::optional<ClusterAuth::TlsFiles>> ClusterAuth::ReadTls(
    const ClusterAuthFlags& flags) {
  const int given = !flags.tls_cert.empty() + !flags.tls_key.empty() + !flags.tls_ca.empty();
  if (given == 0) return std::optional<TlsFiles>();
  if (given != 3) {
    return absl::InvalidArgumentError("--tls-cert, --tls-key and --tls-ca go together");
  }
  TlsFiles tls;
  ASSIGN_OR_RETURN(tls.cert, ReadPem(flags.tls_cert, "--tls-cert", /*is_key=*/false));
  ASSIGN_OR_RETURN(tls.key, ReadPem(flags.tls_key, "--tls-key", /*is_key=*/true));
  ASSIGN_OR_RETURN(tls.ca, ReadPem(flags.tls_ca, "--tls-ca", /*is_key=*/false));
  return std::optional<TlsFiles>(std::move(tls));
}

std::shared_ptr<grpc::ServerCredentials> ClusterAuth::ServerCredentials() const {
  if (!tls_) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls_->ca;
  options.pem_key_cert_pairs.push_back({tls_->key, tls_->cert});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<const ClusterAuth> ClusterAuth::WithSecret(ClusterSecret secret) {
  return std::shared_ptr<const ClusterAuth>(new ClusterAuth(std::move(secret), std::nullopt));
}

std::shared_ptr<const ClusterAuth> ClusterAuth::Insecure() {
  return std::shared_ptr<const ClusterAuth>(new ClusterAuth(std::nullopt, std::nullopt));
}

grpc::Status ClusterAuth::Check(const grpc::ServerContext& ctx, std::string_view method) const {
  if (!secret_) return grpc::Status::OK;
  const auto& metadata = ctx.client_metadata();
  const auto found = metadata.find(kClusterCredentialHeader);
  const bool present = found != metadata.end();
  if (present && secret_->Matches(std::string_view(found->second.data(), found->second.size()))) {
    return grpc::Status::OK;
  }
  // A flood of refused calls must not flood the log: the first few, then every 1000th.
  const uint64_t n = refused_.fetch_add(1) + 1;
  if (n <= 10 || n % 1000 == 0) {
    ComponentLogger("service")->warn(
        "refused {} from {}: {} cluster credential ({} refused so far)", method,
        absl::CEscape(ctx.peer()), present ? "wrong" : "no", n);
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      absl::StrCat(std::string(method), ": ", present ? "wrong" : "missing",
                                   " cluster credential (metadata '", kClusterCredentialHeader,
                                   "'); cluster-internal calls need the cluster secret "
                                   "(--cluster-secret-file, docs/security.md)"));
}

std::shared_ptr<grpc::Channel> ClusterAuth::Channel(const std::string& address) const {
  std::shared_ptr<grpc::ChannelCredentials> transport = grpc::InsecureChannelCredentials();
  if (tls_) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = tls_->ca;
    options.pem_private_key = tls_->key;
    options.pem_cert_chain = tls_->cert;
    transport = grpc::SslCredentials(options);
  }
  if (!secret_) return grpc::CreateChannel(address, transport);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<CredentialInterceptorFactory>(secret_->text()));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, transport, grpc::ChannelArguments(), std::move(factories));
}

}  // namespace pdserve::service
