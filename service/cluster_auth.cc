#include "service/cluster_auth.h"

#include <grpcpp/support/client_interceptor.h>

#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace pdserve::service {
namespace {

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
  if (!flags.secret_file.empty()) {
    absl::StatusOr<ClusterSecret> secret = ClusterSecret::ReadFile(flags.secret_file);
    if (!secret.ok()) return secret.status();
    return WithSecret(std::move(*secret));
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
  return Insecure();
}

std::shared_ptr<const ClusterAuth> ClusterAuth::WithSecret(ClusterSecret secret) {
  return std::shared_ptr<const ClusterAuth>(new ClusterAuth(std::move(secret)));
}

std::shared_ptr<const ClusterAuth> ClusterAuth::Insecure() {
  return std::shared_ptr<const ClusterAuth>(new ClusterAuth(std::nullopt));
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
  if (!secret_) return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<CredentialInterceptorFactory>(secret_->text()));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(factories));
}

}  // namespace pdserve::service
