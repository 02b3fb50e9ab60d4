#include "loadgen/target_model.h"

#include "absl/strings/str_cat.h"
#include "proto/model_spec.h"

namespace pdserve::loadgen {

absl::StatusOr<ModelConfig> ModelOfStatus(const v1::ClusterStatus& status) {
  v1::ModelSpec spec = status.model();
  if (!status.has_model()) spec.set_preset(status.preset());
  absl::StatusOr<ModelConfig> config = ModelConfigOf(spec);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the target reports an invalid model: ", config.status().message()));
  }
  return config;
}

absl::StatusOr<ModelConfig> FetchTargetModel(v1::Router::Stub& stub, absl::Duration timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::ClusterStatus status;
  const grpc::Status s = stub.GetStatus(&ctx, v1::StatusRequest(), &status);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat("reading the target's model (Router.GetStatus): ",
                                     s.error_message()));
  }
  return ModelOfStatus(status);
}

}  // namespace pdserve::loadgen
