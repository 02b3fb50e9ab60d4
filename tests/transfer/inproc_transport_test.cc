// `inproc` (a colocated worker's shared pool): a batch announces blocks the kernels wrote in
// place, moves nothing, and reaches no other pool.
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {
namespace {

using ::testing::HasSubstr;

struct Inproc {
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<KvTransport> transport;
  std::string descriptor;
};

Inproc Make() {
  TransportOptions o;
  o.backend = "inproc";
  o.agent_name = "colocated-0";
  Inproc t;
  t.cache = *CreatePoolCache(o, *PresetConfig("tiny"), 8, KvLayout::kLayerMajor);
  t.transport = *MakeKvTransport(o);
  EXPECT_TRUE(t.transport->RegisterPool(*t.cache).ok());
  t.descriptor = *t.transport->ExportDescriptor();
  return t;
}

TEST(InprocTransportTest, ABatchAnnouncesItsBlocksAndMovesNothing) {
  Inproc t = Make();
  absl::StatusOr<PeerId> self = t.transport->LoadPeer(t.descriptor);
  ASSERT_TRUE(self.ok()) << self.status();
  const BlockCopy copies[] = {{3, 3}, {5, 5}};
  absl::StatusOr<TransferId> id = t.transport->Submit(*self, copies, "req@7");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(t.transport->Wait(*id, absl::ZeroDuration()).ok());
  absl::StatusOr<TransferStats> stats = t.transport->Stats(*id);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->bytes, 0u);
  EXPECT_EQ(stats->operations, 0u);
  EXPECT_TRUE(t.transport->WaitForNotification("req@7", absl::ZeroDuration()).ok());
  // Exactly once.
  EXPECT_EQ(t.transport->WaitForNotification("req@7", absl::ZeroDuration()).code(),
            absl::StatusCode::kDeadlineExceeded);
  const TransportCounters c = t.transport->counters();
  EXPECT_EQ(c.registrations, 1u);
  EXPECT_EQ(c.batches_completed, 1u);
  EXPECT_EQ(c.bytes_sent, 0u);
  EXPECT_EQ(c.notifications_received, 1u);
}

TEST(InprocTransportTest, ACopyBetweenTwoBlocksIsRefusedAndAnnouncesNothing) {
  Inproc t = Make();
  PeerId self = *t.transport->LoadPeer(t.descriptor);
  const BlockCopy moved[] = {{1, 1}, {2, 4}};
  absl::StatusOr<TransferId> id = t.transport->Submit(self, moved, "req@1");
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(id.status().message()), HasSubstr("2 -> 4"));
  const BlockCopy outside[] = {{8, 8}};
  EXPECT_EQ(t.transport->Submit(self, outside, "req@1").status().code(),
            absl::StatusCode::kInvalidArgument);
  const BlockCopy twice[] = {{1, 1}, {1, 1}};
  EXPECT_EQ(t.transport->Submit(self, twice, "req@1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.transport->Submit(self, {}, "req@1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.transport->WaitForNotification("req@1", absl::ZeroDuration()).code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST(InprocTransportTest, AnotherPoolIsUnreachable) {
  Inproc a = Make();
  Inproc b = Make();
  absl::StatusOr<PeerId> other = a.transport->LoadPeer(b.descriptor);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.status().message()), HasSubstr("only its own pool"));
  EXPECT_EQ(a.transport->LoadPeer("local:/pdserve-kv-1-1").status().code(),
            absl::StatusCode::kInvalidArgument);
  // A removed peer takes no batch.
  PeerId self = *a.transport->LoadPeer(a.descriptor);
  ASSERT_TRUE(a.transport->RemovePeer(self).ok());
  const BlockCopy copies[] = {{0, 0}};
  EXPECT_EQ(a.transport->Submit(self, copies, "x@1").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace pdserve::transfer
