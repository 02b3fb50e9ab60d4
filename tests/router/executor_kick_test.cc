// Who schedules a kick (router_service.cc): an idle executor takes it itself and runs the first
// batch it makes; only when every executor is busy does the dispatcher schedule, so that new
// arrivals are still placed meanwhile. The workers are stand-ins at real gRPC addresses; the
// router under test is the real one, in process.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
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

// Holds every Prefill call until released, then fails its items (the requests end quickly).
class HeldPrefill final : public v1::PrefillWorker::Service {
 public:
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
    calls_++;
    release_.WaitForNotificationWithTimeout(absl::Seconds(60));
    for (const v1::PrefillItem& item : request->items()) {
      v1::PrefillItemResult* r = response->add_results();
      r->set_request_id(item.request_id());
      r->set_ok(false);
      r->set_error("held, then failed by the test");
      r->set_error_code(static_cast<int32_t>(absl::StatusCode::kUnavailable));
    }
    return grpc::Status::OK;
  }
  void Release() { release_.Notify(); }
  int calls() const { return calls_.load(); }

 private:
  absl::Notification release_;
  std::atomic<int> calls_{0};
};

v1::ClusterStatus StatusOf(RouterService& router) {
  v1::StatusRequest request;
  v1::ClusterStatus status;
  EXPECT_TRUE(router.GetStatus(nullptr, &request, &status).ok());
  return status;
}

TEST(ExecutorKickTest, ArrivalsAreStillPlacedWhileTheOnlyExecutorIsBusy) {
  RouterOptions options;
  options.config = Tiny();
  options.missed_heartbeats = 1'000'000;  // the stand-ins send none
  options.executor_threads = 1;
  options.scheduler.max_batch_size = 1;  // one request per batch: the second needs a new batch
  RouterService router(options);
  HeldPrefill prefill;
  GrantingDecode decode;
  Server p = Serve(&prefill), d = Serve(&decode);
  ASSERT_TRUE(RegisterPair(router, p.address, d.address));

  GenerateParams params;
  params.prompt_len = 32;
  params.max_tokens = 4;
  auto first = std::make_shared<Outcome>(), second = std::make_shared<Outcome>();
  std::shared_ptr<Call> a = router.Start(params, first);
  // The only executor took the kick and now waits in the held Prefill call.
  for (int i = 0; i < 3000 && prefill.calls() < 1; ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(prefill.calls(), 1);
  std::shared_ptr<Call> b = router.Start(params, second);
  // The dispatcher places it (a batch of its own, waiting for an executor): nothing waits in
  // the scheduler's queue, both requests are prefilling.
  v1::ClusterStatus status;
  for (int i = 0; i < 2000; ++i) {
    status = StatusOf(router);
    if (status.waiting_requests() == 0 && status.prefilling_requests() == 2) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(status.waiting_requests(), 0u) << "an arrival waited for a busy executor";
  EXPECT_EQ(status.prefilling_requests(), 2u);
  EXPECT_EQ(prefill.calls(), 1) << "a second Prefill call started with one executor";

  prefill.Release();
  ASSERT_TRUE(first->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(second->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_GE(prefill.calls(), 2) << "the placed batch never ran once the executor was free";
  p.server->Shutdown();
  d.server->Shutdown();
}

}  // namespace
}  // namespace pdserve::router
