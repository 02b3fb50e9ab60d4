// `inproc` (a colocated worker's shared pool): a batch announces blocks the kernels wrote in
// place, moves nothing, and reaches no other pool.
#include <algorithm>
#include <cstring>
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

// kv_transport.h's Ordering rule: the kernels wrote every block before its batch was
// submitted, so a notification covers the earlier batches' blocks; and a batch that cannot be
// submitted behind them (the peer removed) announces nothing.
TEST(InprocTransportTest, ANotificationCoversTheBlocksOfEveryEarlierBatch) {
  Inproc t = Make();
  PeerId self = *t.transport->LoadPeer(t.descriptor);
  const KvGeometry& g = t.cache->geometry();
  // "Kernels" fill blocks 0..5 (batch A, no notification), then block 6 (batch B, notified).
  std::memset(t.cache->base(), 0x5a, static_cast<size_t>(g.region_bytes()));
  const BlockCopy a[] = {{0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}};
  const BlockCopy b[] = {{6, 6}};
  absl::StatusOr<TransferId> ia = t.transport->Submit(self, a, "");
  absl::StatusOr<TransferId> ib = t.transport->Submit(self, b, "req@2");
  ASSERT_TRUE(ia.ok() && ib.ok());
  ASSERT_TRUE(t.transport->WaitForNotification("req@2", absl::ZeroDuration()).ok());
  for (BlockId blk = 0; blk <= 6; ++blk) {
    for (int f = 0; f < g.fragments_per_block(); ++f) {
      const std::byte* p = t.cache->base() + g.FragmentOffset(blk, f);
      EXPECT_EQ(std::count(p, p + g.transfer_fragment_bytes(), std::byte{0x5a}),
                g.transfer_fragment_bytes())
          << "block " << blk << " fragment " << f;
    }
  }
  EXPECT_TRUE(t.transport->Wait(*ia, absl::ZeroDuration()).ok());
  EXPECT_TRUE(t.transport->Wait(*ib, absl::ZeroDuration()).ok());
  // Nothing fails once submitted here; the one failure is a peer removed between A and B: B
  // is refused and announces nothing.
  absl::StatusOr<TransferId> a2 = t.transport->Submit(self, a, "");
  ASSERT_TRUE(a2.ok());
  ASSERT_TRUE(t.transport->RemovePeer(self).ok());
  EXPECT_EQ(t.transport->Submit(self, b, "req@3").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(t.transport->WaitForNotification("req@3", absl::ZeroDuration()).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(t.transport->counters().notifications_received, 1u);
}

}  // namespace
}  // namespace pdserve::transfer
