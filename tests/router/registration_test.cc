// Issue 16: a registration never waits for another one. A prefill worker that answers its probe
// and then stops answering (stuck engine, SIGSTOP) used to hold the registration lock through a
// decode worker's AddPeer fan-out for the whole RPC timeout, and every other registration waited
// behind it. The workers here are stand-ins at real gRPC addresses: the router under test is
// the real one, in process.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/model_spec.h"
#include "router/router_service.h"
#include "tests/router/stand_in_server.h"

namespace pdserve::router {
namespace {

using stand_in::Registration;
using stand_in::Serve;
using stand_in::Server;
using stand_in::Tiny;

// A prefill worker's gRPC face: answers GetStatus; AddPeer either answers at once or, when
// `stuck`, waits until released (or its caller gives up), as a stopped process would.
class StandInPrefill final : public v1::PrefillWorker::Service {
 public:
  explicit StandInPrefill(bool stuck) : stuck_(stuck) {}
  grpc::Status GetStatus(grpc::ServerContext*, const v1::StatusRequest*,
                         v1::WorkerStatus*) override {
    return grpc::Status::OK;
  }
  grpc::Status AddPeer(grpc::ServerContext* ctx, const v1::AddPeerRequest* request,
                       v1::AddPeerResponse*) override {
    {
      absl::MutexLock lock(&mu_);
      loaded_.push_back(request->worker_id());
    }
    add_peer_called_.Notify();
    while (stuck_ && !released_.WaitForNotificationWithTimeout(absl::Milliseconds(20))) {
      if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
    }
    return grpc::Status::OK;
  }
  std::vector<std::string> loaded() {
    absl::MutexLock lock(&mu_);
    return loaded_;
  }
  absl::Notification add_peer_called_;
  absl::Notification released_;

 private:
  const bool stuck_;
  absl::Mutex mu_;
  std::vector<std::string> loaded_;
};

class StandInDecode final : public v1::DecodeWorker::Service {
 public:
  grpc::Status GetStatus(grpc::ServerContext*, const v1::StatusRequest*,
                         v1::WorkerStatus*) override {
    return grpc::Status::OK;
  }
};

TEST(RegistrationTest, ARegistrationStuckOnANonAnsweringPeerDoesNotHoldUpAnother) {
  RouterOptions options;
  options.config = Tiny();
  options.rpc_timeout = absl::Seconds(20);  // the stuck call outlasts the whole test
  options.missed_heartbeats = 1'000'000;    // the stand-ins send none; nobody is dropped
  RouterService router(options);

  StandInPrefill stuck(/*stuck=*/true), healthy(/*stuck=*/false);
  StandInDecode decode;
  Server stuck_server = Serve(&stuck), healthy_server = Serve(&healthy),
         decode_server = Serve(&decode);
  v1::RegisterWorkerResponse response;
  const v1::RegisterWorkerRequest first =
      Registration("prefill-stuck", v1::WORKER_ROLE_PREFILL, stuck_server.address);
  ASSERT_TRUE(router.RegisterWorker(nullptr, &first, &response).ok());

  // decode-0's fan-out asks the stuck prefill worker to load it, and waits.
  std::atomic<bool> decode_done{false};
  grpc::Status decode_status;
  std::thread decode_registration([&] {
    v1::RegisterWorkerRequest r =
        Registration("decode-0", v1::WORKER_ROLE_DECODE, decode_server.address);
    v1::RegisterWorkerResponse out;
    decode_status = router.RegisterWorker(nullptr, &r, &out);
    decode_done = true;
  });
  ASSERT_TRUE(stuck.add_peer_called_.WaitForNotificationWithTimeout(absl::Seconds(30)));

  // Meanwhile another prefill worker registers: it is not held up, and it loads decode-0, whose
  // registration is still in progress.
  v1::RegisterWorkerRequest second =
      Registration("prefill-1", v1::WORKER_ROLE_PREFILL, healthy_server.address);
  const grpc::Status second_status = router.RegisterWorker(nullptr, &second, &response);
  const bool decode_done_then = decode_done.load();
  stuck.released_.Notify();
  decode_registration.join();

  EXPECT_TRUE(second_status.ok()) << second_status.error_message();
  EXPECT_FALSE(decode_done_then) << "prefill-1 registered only after decode-0's stuck fan-out";
  EXPECT_EQ(healthy.loaded(), std::vector<std::string>{"decode-0"});
  EXPECT_TRUE(decode_status.ok()) << decode_status.error_message();
  v1::ClusterStatus status;
  grpc::ServerContext ctx;
  // GetStatus asks every worker for live numbers; the stand-ins answer.
  ASSERT_TRUE(router.GetStatus(&ctx, nullptr, &status).ok());
  std::vector<std::string> addresses;
  for (const v1::WorkerStatus& w : status.workers()) addresses.push_back(w.address());
  std::vector<std::string> expected = {stuck_server.address, healthy_server.address,
                                       decode_server.address};
  std::sort(addresses.begin(), addresses.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(addresses, expected);  // all three registered
  for (Server* s : {&stuck_server, &healthy_server, &decode_server}) s->server->Shutdown();
}

}  // namespace
}  // namespace pdserve::router
