// Bad input and wrong state, both sides in the test process: clear statuses, no byte written.
#include <cstring>

#include "gtest/gtest.h"
#include "tests/transfer/transfer_test_util.h"
#include "transfer/pool_descriptor.h"

namespace pdserve::transfer::testing {
namespace {

constexpr char kPreset[] = "small";

class TransferInputTest : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    receiver_ = MakeSide(GetParam(), "decode", kPreset, 8, KvLayout::kLayerMajor);
    sender_ = MakeSide(GetParam(), "prefill", kPreset, 16, KvLayout::kLayerMajor);
    ASSERT_NE(receiver_.transport, nullptr);
    ASSERT_NE(sender_.transport, nullptr);
    FillPattern(sender_.cache->base(), sender_.cache->memory().size(), 11);
    absl::StatusOr<std::string> d = receiver_.transport->ExportDescriptor();
    ASSERT_TRUE(d.ok()) << d.status();
    descriptor_ = *d;
  }

  Side receiver_, sender_;
  std::string descriptor_;
};

TEST_P(TransferInputTest, OutOfRangeBlocksAreInvalidArgumentAndWriteNothing) {
  absl::StatusOr<PeerId> peer = sender_.transport->LoadPeer(descriptor_);
  ASSERT_TRUE(peer.ok()) << peer.status();
  const std::vector<std::vector<BlockCopy>> bad = {
      {{0, 8}},                  // destination past the receiver's 8 blocks
      {{16, 0}},                 // source past the sender's 16 blocks
      {{0, 0}, {1, 1}, {2, 9}},  // one bad copy spoils the batch
      {{0, 3}, {1, 3}},          // the same destination twice
      {}};                       // nothing to do
  for (const auto& copies : bad) {
    EXPECT_EQ(sender_.transport->Submit(*peer, copies, "bad").status().code(),
              absl::StatusCode::kInvalidArgument)
        << CopiesArg(copies);
  }
  EXPECT_EQ(DirtyBlocksOutside(*receiver_.cache, {}), 0);
  EXPECT_EQ(receiver_.transport->WaitForNotification("bad", absl::Milliseconds(200)).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(sender_.transport->counters().batches_submitted, 0u);
}

TEST_P(TransferInputTest, UnknownOrRemovedPeerIsFailedPrecondition) {
  const std::vector<BlockCopy> copies = {{0, 0}};
  EXPECT_EQ(sender_.transport->Submit(999, copies, "x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<PeerId> peer = sender_.transport->LoadPeer(descriptor_);
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE(sender_.transport->RemovePeer(*peer).ok());
  EXPECT_EQ(sender_.transport->Submit(*peer, copies, "x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sender_.transport->RemovePeer(*peer).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DirtyBlocksOutside(*receiver_.cache, {}), 0);
}

TEST_P(TransferInputTest, GeometryMismatchIsInvalidArgument) {
  Side block_major = MakeSide(GetParam(), "other-layout", kPreset, 8, KvLayout::kBlockMajor);
  Side tiny = MakeSide(GetParam(), "other-shape", "tiny", 8, KvLayout::kLayerMajor);
  EXPECT_EQ(sender_.transport->LoadPeer(*block_major.transport->ExportDescriptor()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sender_.transport->LoadPeer(*tiny.transport->ExportDescriptor()).status().code(),
            absl::StatusCode::kInvalidArgument);
  PoolDescriptor other_backend = *PoolDescriptor::Parse(descriptor_);
  other_backend.backend = GetParam().backend == "local" ? "ucx" : "local";
  EXPECT_EQ(sender_.transport->LoadPeer(other_backend.Serialize()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sender_.transport->LoadPeer("garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(TransferInputTest, DescriptorOfADestroyedPoolIsFailedPrecondition) {
  Side gone = MakeSide(GetParam(), "gone", kPreset, 8, KvLayout::kLayerMajor);
  const std::string stale = *gone.transport->ExportDescriptor();
  gone.transport.reset();
  gone.cache.reset();
  EXPECT_EQ(sender_.transport->LoadPeer(stale).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(TransferInputTest, PoolIsRegisteredOnceWhateverTheNumberOfBatches) {
  EXPECT_EQ(sender_.transport->RegisterPool(*sender_.cache).code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<PeerId> peer = sender_.transport->LoadPeer(descriptor_);
  ASSERT_TRUE(peer.ok()) << peer.status();
  for (int i = 0; i < 20; ++i) {
    std::vector<BlockCopy> copies = {{static_cast<BlockId>(i % 16), static_cast<BlockId>(i % 8)}};
    absl::StatusOr<TransferId> id = sender_.transport->Submit(*peer, copies, absl::StrCat("r", i));
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_TRUE(sender_.transport->Wait(*id, absl::Seconds(30)).ok());
    ASSERT_TRUE(receiver_.transport->WaitForNotification(absl::StrCat("r", i), absl::Seconds(30)).ok());
    absl::StatusOr<TransferStats> stats = sender_.transport->Stats(*id);
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->bytes, static_cast<uint64_t>(sender_.cache->geometry().block_bytes()));
    EXPECT_EQ(stats->operations, 4u);  // one per layer
  }
  EXPECT_EQ(sender_.transport->counters().registrations, 1u);
  EXPECT_EQ(receiver_.transport->counters().registrations, 1u);
  EXPECT_EQ(sender_.transport->counters().batches_completed, 20u);
  EXPECT_EQ(sender_.transport->counters().peers_loaded, 1u);
}

TEST_P(TransferInputTest, HandleIsReapedOnceItsFinalStatusWasReturned) {
  absl::StatusOr<PeerId> peer = sender_.transport->LoadPeer(descriptor_);
  ASSERT_TRUE(peer.ok()) << peer.status();
  const std::vector<BlockCopy> copies = {{0, 0}};
  absl::StatusOr<TransferId> id = sender_.transport->Submit(*peer, copies, "");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(sender_.transport->Wait(*id, absl::Seconds(30)).ok());
  EXPECT_EQ(sender_.transport->Poll(*id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(sender_.transport->Stats(*id).ok());
  EXPECT_EQ(sender_.transport->Submit(*peer, copies, std::string(kMaxNotificationBytes + 1, 'x'))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Backends, TransferInputTest, ::testing::ValuesIn(AllBackends()),
                         [](const auto& info) { return info.param.name; });

TEST(TransferFactoryTest, UnknownBackendIsInvalidArgumentAndBackendsAreListed) {
  TransportOptions options;
  options.backend = "carrier-pigeon";
  EXPECT_EQ(MakeKvTransport(options).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> names = KvTransportBackends();
  EXPECT_NE(std::find(names.begin(), names.end(), "local"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "ucx"), names.end());
}

TEST(TransferFactoryTest, LocalPoolInPrivateMemoryCannotReceive) {
  TransportOptions options;
  auto cache = *KvCache::CreateInHostMemory(*PresetConfig(kPreset), 4, KvLayout::kLayerMajor);
  auto transport = *MakeKvTransport(options);
  EXPECT_EQ(transport->ExportDescriptor().status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(transport->RegisterPool(*cache).ok());
  absl::StatusOr<std::string> descriptor = transport->ExportDescriptor();
  ASSERT_TRUE(descriptor.ok()) << descriptor.status();
  Side sender = MakeSide({"local", "", "local"}, "prefill", kPreset, 4, KvLayout::kLayerMajor);
  EXPECT_EQ(sender.transport->LoadPeer(*descriptor).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE((*AllocatePoolMemory(options, 4096))->shm_name().empty());
}

}  // namespace
}  // namespace pdserve::transfer::testing

namespace pdserve::transfer::testing {
namespace {

// `local` copies a batch of up to 256 KiB on the submitting thread and sends its notification
// there: the handle is already final when Submit returns.
TEST(LocalTransportTest, SmallBatchIsCompleteWhenSubmitReturns) {
  const BackendCase local{"local", "", "local"};
  Side receiver = MakeSide(local, "decode", kPreset, 8, KvLayout::kBlockMajor);
  Side sender = MakeSide(local, "prefill", kPreset, 8, KvLayout::kBlockMajor);
  ASSERT_NE(receiver.transport, nullptr);
  ASSERT_NE(sender.transport, nullptr);
  FillPattern(sender.cache->base(), sender.cache->memory().size(), 5);
  absl::StatusOr<PeerId> peer = sender.transport->LoadPeer(*receiver.transport->ExportDescriptor());
  ASSERT_TRUE(peer.ok()) << peer.status();
  const std::vector<BlockCopy> copies = {{1, 6}, {2, 3}};  // 2 x 64 KiB
  absl::StatusOr<TransferId> id = sender.transport->Submit(*peer, copies, "small");
  ASSERT_TRUE(id.ok()) << id.status();
  absl::StatusOr<bool> done = sender.transport->Poll(*id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(*done);
  ASSERT_TRUE(receiver.transport->WaitForNotification("small", absl::Seconds(30)).ok());
  const KvGeometry& g = sender.cache->geometry();
  const size_t block = static_cast<size_t>(g.block_bytes());
  for (const BlockCopy& c : copies) {
    EXPECT_EQ(std::memcmp(receiver.cache->base() + g.FragmentOffset(c.dst, 0),
                          sender.cache->base() + g.FragmentOffset(c.src, 0), block),
              0);
  }
}

}  // namespace
}  // namespace pdserve::transfer::testing
