// The gRPC client of a load run: pdserve's own Router.Generate (`--backend pdserve`).
#include "loadgen/grpc_client.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "loadgen/generate_call.h"
#include "loadgen/target_model.h"
#include "pdserve.grpc.pb.h"

namespace pdserve::loadgen {
namespace {

namespace v1 = pdserve::v1;

class GrpcLoadClient final : public LoadClient {
 public:
  explicit GrpcLoadClient(std::vector<std::unique_ptr<v1::Router::Stub>> stubs)
      : stubs_(std::move(stubs)) {}

  absl::StatusOr<ModelConfig> FetchModel(absl::Duration timeout) override {
    return FetchTargetModel(*stubs_.front(), timeout);
  }

  absl::Status Prepare(std::vector<RequestSpec>& specs, const std::string& id_prefix,
                       const ModelConfig& model, bool name_preset) override {
    requests_.assign(specs.size(), v1::GenerateRequest());
    calls_.clear();
    calls_.resize(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      v1::GenerateRequest& r = requests_[i];
      r.set_request_id(absl::StrCat(id_prefix, specs[i].index));
      r.mutable_prompt_tokens()->Assign(specs[i].prompt.begin(), specs[i].prompt.end());
      r.set_max_tokens(specs[i].output_len);
      r.set_seed(specs[i].seed);
      r.set_ignore_eos(true);
      if (name_preset) r.set_preset(model.name);
    }
    return absl::OkStatus();
  }

  std::string RequestId(int i) const override { return requests_[i].request_id(); }

  void Send(int i, RequestRecord* record, CallTracker* tracker, int64_t t0_ns,
            double timeout_s) override {
    calls_[i] = std::make_unique<GenerateCall>(record, tracker, t0_ns);
    calls_[i]->Start(stubs_[i % stubs_.size()].get(), &requests_[i], timeout_s);
  }

  void EndPhase() override { calls_.clear(); }

 private:
  std::vector<std::unique_ptr<v1::Router::Stub>> stubs_;
  std::vector<v1::GenerateRequest> requests_;
  std::vector<std::unique_ptr<GenerateCall>> calls_;
};

}  // namespace

// One HTTP/2 connection per channel: the distinct argument keeps gRPC from sharing subchannels.
absl::StatusOr<std::unique_ptr<LoadClient>> ConnectGrpcClient(const LoadOptions& options) {
  std::vector<std::unique_ptr<v1::Router::Stub>> stubs;
  const auto deadline =
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(options.connect_timeout_s * 1e3));
  for (int i = 0; i < options.num_channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("pdserve.loadgen.channel", i);
    auto channel =
        grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(deadline)) {
      return absl::UnavailableError(absl::StrCat("loadgen: cannot connect to ", options.target,
                                                 " within ", options.connect_timeout_s, " s"));
    }
    stubs.push_back(v1::Router::NewStub(channel));
  }
  return std::make_unique<GrpcLoadClient>(std::move(stubs));
}

}  // namespace pdserve::loadgen
