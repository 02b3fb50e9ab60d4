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

using stand_in::Registration;
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

class Ends final : public EventSink {
 public:
  bool OnEvent(const TokenEvent&) override { return true; }
  void OnDone(const absl::Status& s) override {
    status = s;
    done.Notify();
  }
  absl::Status status;
  absl::Notification done;
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
  v1::RegisterWorkerResponse response;
  const v1::RegisterWorkerRequest rp = Registration("prefill-0", v1::WORKER_ROLE_PREFILL, p.address);
  const v1::RegisterWorkerRequest rd = Registration("decode-0", v1::WORKER_ROLE_DECODE, d.address);
  ASSERT_TRUE(router.RegisterWorker(nullptr, &rp, &response).ok());
  ASSERT_TRUE(router.RegisterWorker(nullptr, &rd, &response).ok());

  GenerateParams params;
  params.prompt_len = 32;
  params.max_tokens = 4;
  auto first = std::make_shared<Ends>(), second = std::make_shared<Ends>();
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
