// A prefill worker's answer is hostile input like any other: one that reports an item as failed
// with error code 0 (OK on the wire) or a code absl does not know must not end the request OK.
// The workers here are stand-ins at real gRPC addresses; the router under test is the real one,
// in process.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "common/wire_status.h"
#include "gtest/gtest.h"
#include "proto/model_spec.h"
#include "router/router_service.h"
#include "tests/router/stand_in_server.h"

namespace pdserve::router {
namespace {

using stand_in::GrantingDecode;
using stand_in::Outcome;
using stand_in::RegisterPair;
using stand_in::Serve;
using stand_in::Server;
using stand_in::Tiny;

// Answers every Prefill item with ok = false and the given error code, no message.
class FailingPrefill final : public v1::PrefillWorker::Service {
 public:
  explicit FailingPrefill(int32_t code) : code_(code) {}
  grpc::Status GetStatus(grpc::ServerContext*, const v1::StatusRequest*,
                         v1::WorkerStatus*) override {
    return grpc::Status::OK;
  }
  grpc::Status AddPeer(grpc::ServerContext*, const v1::AddPeerRequest*,
                       v1::AddPeerResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status SetDestinations(grpc::ServerContext*, const v1::PrefillDestinationsRequest*,
                               v1::PrefillDestinationsResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status Prefill(grpc::ServerContext*, const v1::PrefillBatchRequest* request,
                       v1::PrefillBatchResponse* response) override {
    for (const v1::PrefillItem& item : request->items()) {
      v1::PrefillItemResult* r = response->add_results();
      r->set_request_id(item.request_id());
      r->set_ok(false);
      r->set_error_code(code_);
    }
    return grpc::Status::OK;
  }

 private:
  const int32_t code_;
};

class HostilePrefillTest : public ::testing::TestWithParam<int32_t> {};

TEST_P(HostilePrefillTest, AFailureReportedWithANonFailingCodeStillFailsTheRequest) {
  RouterOptions options;
  options.config = Tiny();
  options.missed_heartbeats = 1'000'000;  // the stand-ins send none
  RouterService router(options);
  FailingPrefill prefill(GetParam());
  GrantingDecode decode;
  Server p = Serve(&prefill), d = Serve(&decode);
  ASSERT_TRUE(RegisterPair(router, p.address, d.address));

  GenerateParams params;
  params.prompt_len = 32;
  params.max_tokens = 4;
  params.seed = 7;
  auto outcome = std::make_shared<Outcome>();
  std::shared_ptr<Call> call = router.Start(params, outcome);
  ASSERT_TRUE(outcome->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_FALSE(outcome->status.ok()) << "a failed prefill ended OK";
  EXPECT_EQ(outcome->tokens, 0);
  p.server->Shutdown();
  d.server->Shutdown();
}

// 0: OK on the wire; 99: no code at all; 5: a real one (NotFound), kept as the worker sent it.
INSTANTIATE_TEST_SUITE_P(Codes, HostilePrefillTest, ::testing::Values(0, 99, 5));

TEST(WireStatusTest, CodesFromAnotherProcessAreBoundedAndAFailureIsNeverOk) {
  EXPECT_EQ(StatusCodeFromWire(0), absl::StatusCode::kOk);
  EXPECT_EQ(StatusCodeFromWire(5), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusCodeFromWire(16), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(StatusCodeFromWire(17), absl::StatusCode::kUnknown);
  EXPECT_EQ(StatusCodeFromWire(-1), absl::StatusCode::kUnknown);
  EXPECT_EQ(FailureCodeFromWire(0), absl::StatusCode::kUnknown);
  EXPECT_EQ(FailureCodeFromWire(0, absl::StatusCode::kAborted), absl::StatusCode::kAborted);
  EXPECT_EQ(FailureCodeFromWire(1 << 30, absl::StatusCode::kAborted), absl::StatusCode::kAborted);
  EXPECT_EQ(FailureCodeFromWire(14), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pdserve::router
