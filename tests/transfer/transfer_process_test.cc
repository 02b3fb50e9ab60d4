// Transfers between real processes: the test process is one side, transfer_test_peer the other.
#include <sys/mman.h>

#include <tuple>

#include "gtest/gtest.h"
#include "tests/transfer/peer_process.h"
#include "tests/transfer/transfer_test_util.h"
#include "transfer/pool_descriptor.h"

namespace pdserve::transfer::testing {
namespace {

constexpr char kPreset[] = "small";  // 4 layers, 16 KiB fragments, 64 KiB blocks
constexpr uint32_t kBlocks = 64;
const absl::Duration kDeadline = absl::Seconds(30);
const std::vector<BlockCopy> kOneBlock = {{0, 1}};

// Removes what a SIGKILLed receiver could not unlink itself.
void UnlinkShmOf(const std::string& descriptor) {
  absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(descriptor);
  if (d.ok() && d->fields.count("shm_name")) shm_unlink(d->fields.at("shm_name").c_str());
}

class RoundTripTest : public ::testing::TestWithParam<std::tuple<BackendCase, KvLayout>> {};

TEST_P(RoundTripTest, ScatteredBlocksArriveExactlyWithOneNotificationAfterTheData) {
  const auto& [c, layout] = GetParam();
  Side receiver = MakeSide(c, "decode-B", kPreset, kBlocks, layout);
  ASSERT_NE(receiver.transport, nullptr);
  absl::StatusOr<std::string> descriptor = receiver.transport->ExportDescriptor();
  ASSERT_TRUE(descriptor.ok()) << descriptor.status();

  PeerProcess sender(PeerArgs(c, layout, kPreset, kBlocks, "prefill-A"));
  ASSERT_EQ(sender.Command("fill 7"), "ok") << sender.hello();
  ASSERT_EQ(sender.Command("load " + *descriptor), "peer 1");

  // Runs of different lengths into scattered destinations, given out of order.
  const std::vector<BlockCopy> copies = {{10, 40}, {0, 63}, {1, 5}, {2, 6},  {3, 7},
                                         {11, 41}, {20, 0}, {33, 30}, {34, 31}, {36, 1},
                                         {50, 2},  {12, 42}, {13, 20}};
  sender.Send("send 1 req-1 " + CopiesArg(copies));
  ASSERT_TRUE(receiver.transport->WaitForNotification("req-1", kDeadline).ok());
  // The notification came: every byte of the batch must already be there.
  auto expected = ExpectedPool(kPreset, kBlocks, layout, 7);
  EXPECT_EQ(MismatchedFragments(*expected, *receiver.cache, copies), 0);
  std::vector<BlockId> written;
  for (const BlockCopy& copy : copies) written.push_back(copy.dst);
  EXPECT_EQ(DirtyBlocksOutside(*receiver.cache, written), 0);
  EXPECT_EQ(sender.ReadLine(), "ok");

  // A second batch on the same channel: by the time it arrives, a duplicate of the first
  // notification would have arrived too.
  ASSERT_EQ(sender.Command("send 1 req-2 9:9"), "ok");
  ASSERT_TRUE(receiver.transport->WaitForNotification("req-2", kDeadline).ok());
  EXPECT_TRUE(receiver.transport->TakeNotifications().empty());
  TransportCounters counters = receiver.transport->counters();
  EXPECT_EQ(counters.notifications_received, 2u);
  EXPECT_EQ(counters.registrations, 1u);
  EXPECT_EQ(sender.Command("counters"), "registrations 1 notifications 0");
}

INSTANTIATE_TEST_SUITE_P(
    Backends, RoundTripTest,
    ::testing::Combine(::testing::ValuesIn(AllBackends()),
                       ::testing::Values(KvLayout::kLayerMajor, KvLayout::kBlockMajor)),
    [](const auto& info) {
      return std::get<0>(info.param).name + "_" +
             (std::get<1>(info.param) == KvLayout::kLayerMajor ? "LayerMajor" : "BlockMajor");
    });

class MixedBatchTest : public ::testing::TestWithParam<BackendCase> {};

// Small batches (one 64 KiB block: copied inline on the submitting thread by local) and large
// ones (8 blocks, 512 KiB: handed to local's copy threads), all in flight at once.
TEST_P(MixedBatchTest, SmallAndLargeBatchesInFlightTogetherAllLandWithOneNotificationEach) {
  const BackendCase& c = GetParam();
  const KvLayout layout = KvLayout::kLayerMajor;
  Side receiver = MakeSide(c, "decode", kPreset, kBlocks, layout);
  ASSERT_NE(receiver.transport, nullptr);
  PeerProcess sender(PeerArgs(c, layout, kPreset, kBlocks, "prefill"));
  ASSERT_EQ(sender.Command("fill 4"), "ok") << sender.hello();
  ASSERT_EQ(sender.Command("load " + *receiver.transport->ExportDescriptor()), "peer 1");
  const std::vector<int> sizes = {1, 8, 1, 1, 8, 1, 1, 8, 1, 1, 8, 1, 2, 2};  // 44 blocks
  constexpr BlockId kDst0 = 10;
  ASSERT_EQ(sender.Command(absl::StrCat("sendsizes 1 mix ", kDst0, " ", absl::StrJoin(sizes, ","))),
            "ok");
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_TRUE(receiver.transport->WaitForNotification(absl::StrCat("mix-", i), kDeadline).ok())
        << "mix-" << i;
  }
  EXPECT_TRUE(receiver.transport->TakeNotifications().empty());
  EXPECT_EQ(receiver.transport->counters().notifications_received, sizes.size());
  std::vector<BlockCopy> copies;
  std::vector<BlockId> written;
  for (BlockId b = 0; b < 44; ++b) {
    copies.push_back({b, kDst0 + b});
    written.push_back(kDst0 + b);
  }
  EXPECT_EQ(MismatchedFragments(*ExpectedPool(kPreset, kBlocks, layout, 4), *receiver.cache, copies), 0);
  EXPECT_EQ(DirtyBlocksOutside(*receiver.cache, written), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, MixedBatchTest, ::testing::ValuesIn(AllBackends()),
                         [](const auto& info) { return info.param.name; });

// The local backend does not check the peer before a batch: a receiver that is gone fails the
// batch when its notification is sent (EPIPE on the notification socket).
TEST(LocalReceiverGoneTest, BatchToAnExitedReceiverIsAcceptedAndFailsAtWaitWithUnavailable) {
  const BackendCase c = AllBackends().front();
  ASSERT_EQ(c.backend, "local");
  Side sender = MakeSide(c, "prefill", kPreset, kBlocks, KvLayout::kLayerMajor);
  ASSERT_NE(sender.transport, nullptr);
  PeerProcess receiver(PeerArgs(c, KvLayout::kLayerMajor, kPreset, kBlocks, "decode-gone"));
  const std::string descriptor = receiver.descriptor();
  ASSERT_FALSE(descriptor.empty()) << receiver.hello();
  absl::StatusOr<PeerId> peer = sender.transport->LoadPeer(descriptor);
  ASSERT_TRUE(peer.ok()) << peer.status();
  receiver.Kill();  // reaped: its end of the notification socket is closed
  UnlinkShmOf(descriptor);
  absl::StatusOr<TransferId> id = sender.transport->Submit(*peer, kOneBlock, "after-exit");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(sender.transport->Wait(*id, kDeadline).code(), absl::StatusCode::kUnavailable);
}

// Without a notification to send, the local backend checks the peer's socket after the copy.
TEST(LocalReceiverGoneTest, BatchWithoutNotificationToAnExitedReceiverFailsWithUnavailable) {
  const BackendCase c = AllBackends().front();
  ASSERT_EQ(c.backend, "local");
  Side sender = MakeSide(c, "prefill", kPreset, kBlocks, KvLayout::kLayerMajor);
  ASSERT_NE(sender.transport, nullptr);
  PeerProcess receiver(PeerArgs(c, KvLayout::kLayerMajor, kPreset, kBlocks, "decode-gone"));
  const std::string descriptor = receiver.descriptor();
  ASSERT_FALSE(descriptor.empty()) << receiver.hello();
  absl::StatusOr<PeerId> peer = sender.transport->LoadPeer(descriptor);
  ASSERT_TRUE(peer.ok()) << peer.status();
  receiver.Kill();
  UnlinkShmOf(descriptor);
  absl::StatusOr<TransferId> id = sender.transport->Submit(*peer, kOneBlock, "");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(sender.transport->Wait(*id, kDeadline).code(), absl::StatusCode::kUnavailable);
}

class ProcessFaultTest : public ::testing::TestWithParam<BackendCase> {};

TEST_P(ProcessFaultTest, ConcurrentBatchesFromTwoSendersAllLandInOneReceiver) {
  const BackendCase& c = GetParam();
  const KvLayout layout = KvLayout::kLayerMajor;
  Side receiver = MakeSide(c, "decode", kPreset, kBlocks, layout);
  ASSERT_NE(receiver.transport, nullptr);
  const std::string descriptor = *receiver.transport->ExportDescriptor();
  PeerProcess a(PeerArgs(c, layout, kPreset, kBlocks, "prefill-a"));
  PeerProcess b(PeerArgs(c, layout, kPreset, kBlocks, "prefill-b"));
  ASSERT_EQ(a.Command("fill 1"), "ok") << a.hello();
  ASSERT_EQ(b.Command("fill 2"), "ok") << b.hello();
  ASSERT_EQ(a.Command("load " + descriptor), "peer 1");
  ASSERT_EQ(b.Command("load " + descriptor), "peer 1");
  // 16 batches of 2 blocks from each sender, all in flight at once: a's blocks 0..31 land in
  // 0..31, b's blocks 0..31 in 32..63.
  a.Send("sendmany 1 a 16 2 0");
  b.Send("sendmany 1 b 16 2 32");
  for (int i = 0; i < 16; ++i) {
    EXPECT_TRUE(receiver.transport->WaitForNotification(absl::StrCat("a-", i), kDeadline).ok());
    EXPECT_TRUE(receiver.transport->WaitForNotification(absl::StrCat("b-", i), kDeadline).ok());
  }
  EXPECT_EQ(a.ReadLine(), "ok");
  EXPECT_EQ(b.ReadLine(), "ok");
  std::vector<BlockCopy> from_a, from_b;
  for (BlockId i = 0; i < 32; ++i) {
    from_a.push_back({i, i});
    from_b.push_back({i, 32 + i});
  }
  EXPECT_EQ(MismatchedFragments(*ExpectedPool(kPreset, kBlocks, layout, 1), *receiver.cache, from_a), 0);
  EXPECT_EQ(MismatchedFragments(*ExpectedPool(kPreset, kBlocks, layout, 2), *receiver.cache, from_b), 0);
  EXPECT_EQ(receiver.transport->counters().notifications_received, 32u);
  EXPECT_TRUE(receiver.transport->TakeNotifications().empty());
}

TEST_P(ProcessFaultTest, KilledSenderLeavesNoNotificationAndReceiverKeepsWorking) {
  const BackendCase& c = GetParam();
  const KvLayout layout = KvLayout::kBlockMajor;
  Side receiver = MakeSide(c, "decode", kPreset, kBlocks, layout);
  ASSERT_NE(receiver.transport, nullptr);
  const std::string descriptor = *receiver.transport->ExportDescriptor();
  {
    PeerProcess doomed(PeerArgs(c, layout, kPreset, kBlocks, "prefill-doomed"));
    ASSERT_EQ(doomed.Command("fill 5"), "ok") << doomed.hello();
    ASSERT_EQ(doomed.Command("load " + descriptor), "peer 1");
    std::vector<BlockCopy> all;
    for (BlockId i = 0; i < 48; ++i) all.push_back({i, i});
    ASSERT_EQ(doomed.Command("sendloop 1 loop " + CopiesArg(all)), "started");
    ASSERT_TRUE(receiver.transport->WaitForNotification("loop-0", kDeadline).ok());
    doomed.Kill();  // most likely in the middle of a batch's copies
    UnlinkShmOf(doomed.descriptor());
  }
  // Notifications of batches that completed before the kill, in order, each once; then none.
  int next = 1;
  while (receiver.transport->WaitForNotification(absl::StrCat("loop-", next), absl::Milliseconds(300)).ok()) {
    ++next;
  }
  EXPECT_TRUE(receiver.transport->TakeNotifications().empty());
  EXPECT_EQ(receiver.transport->WaitForNotification(absl::StrCat("loop-", next), absl::Milliseconds(300)).code(),
            absl::StatusCode::kDeadlineExceeded);

  // The receiver keeps serving other senders.
  PeerProcess fresh(PeerArgs(c, layout, kPreset, kBlocks, "prefill-fresh"));
  ASSERT_EQ(fresh.Command("fill 9"), "ok") << fresh.hello();
  ASSERT_EQ(fresh.Command("load " + descriptor), "peer 1");
  ASSERT_EQ(fresh.Command("send 1 after 5:60,6:61"), "ok");
  ASSERT_TRUE(receiver.transport->WaitForNotification("after", kDeadline).ok());
  EXPECT_EQ(MismatchedFragments(*ExpectedPool(kPreset, kBlocks, layout, 9), *receiver.cache,
                                {{5, 60}, {6, 61}}),
            0);
}

TEST_P(ProcessFaultTest, KilledReceiverFailsTheSenderHandleWithUnavailable) {
  const BackendCase& c = GetParam();
  const KvLayout layout = KvLayout::kLayerMajor;
  Side sender = MakeSide(c, "prefill", kPreset, kBlocks, layout);
  ASSERT_NE(sender.transport, nullptr);
  FillPattern(sender.cache->base(), sender.cache->memory().size(), 3);
  PeerProcess receiver(PeerArgs(c, layout, kPreset, kBlocks, "decode-doomed"));
  const std::string descriptor = receiver.descriptor();
  ASSERT_FALSE(descriptor.empty()) << receiver.hello();
  absl::StatusOr<PeerId> peer = sender.transport->LoadPeer(descriptor);
  ASSERT_TRUE(peer.ok()) << peer.status();
  std::vector<BlockCopy> all;
  for (BlockId i = 0; i < kBlocks; ++i) all.push_back({i, kBlocks - 1 - i});
  absl::StatusOr<TransferId> first = sender.transport->Submit(*peer, all, "first");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(sender.transport->Wait(*first, kDeadline).ok());
  ASSERT_EQ(receiver.Command("wait first 30000"), "ok");

  absl::StatusOr<TransferId> inflight = sender.transport->Submit(*peer, all, "inflight");
  receiver.Kill();
  UnlinkShmOf(descriptor);
  if (inflight.ok()) {
    // Either it landed before the kill or it fails: never a hang.
    absl::Status s = sender.transport->Wait(*inflight, kDeadline);
    EXPECT_TRUE(s.ok() || s.code() == absl::StatusCode::kUnavailable) << s;
  }
  // Every batch after the death fails with Unavailable, at Submit or at Wait, within the deadline.
  absl::Status after;
  for (int i = 0; i < 20 && after.ok(); ++i) {
    absl::StatusOr<TransferId> id = sender.transport->Submit(*peer, all, absl::StrCat("after-", i));
    after = id.ok() ? sender.transport->Wait(*id, kDeadline) : id.status();
  }
  EXPECT_EQ(after.code(), absl::StatusCode::kUnavailable) << after;
}

INSTANTIATE_TEST_SUITE_P(Backends, ProcessFaultTest, ::testing::ValuesIn(AllBackends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace pdserve::transfer::testing
