// What a prefill worker's GetStatus says its transfer backend is: the transport's, or the name
// the worker was started with when that differs from it (ucx-staged: the transport is plain ucx,
// and `pdserve doctor --endpoint` judges staging by this name).
#include <grpcpp/server_context.h>

#include "gtest/gtest.h"
#include "prefill_worker/prefill_engine.h"
#include "prefill_worker/prefill_service.h"
#include "tests/prefill_worker/fake_transport.h"

namespace pdserve::prefill {
namespace {

std::string ReportedBackend(const std::string& reported) {
  auto cache = *KvCache::CreateInHostMemory(*PresetConfig("tiny"), 8, KvLayout::kLayerMajor);
  FakeTransport transport;
  EXPECT_TRUE(transport.RegisterPool(*cache).ok());
  PrefillEngine engine(*cache, transport, PrefillEngineOptions{.chunk_tokens = 16});
  PrefillServiceOptions options;
  options.reported_backend = reported;
  PrefillService service(engine, transport, options);
  grpc::ServerContext ctx;
  v1::StatusRequest request;
  v1::WorkerStatus status;
  EXPECT_TRUE(service.GetStatus(&ctx, &request, &status).ok());
  return status.transfer_backend();
}

TEST(PrefillStatusTest, ReportsTheTransportsBackendUnlessTheWorkerNamedAnother) {
  FakeTransport transport;
  EXPECT_EQ(ReportedBackend(""), transport.backend());
  EXPECT_EQ(ReportedBackend("ucx-staged"), "ucx-staged");
}

}  // namespace
}  // namespace pdserve::prefill
