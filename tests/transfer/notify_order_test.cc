// kv_transport.h's Ordering rule, per backend, between real processes: a notification covers
// every batch submitted to the same peer before it (the receiver finds all their bytes in place
// when it arrives), and a batch behind one that failed never announces itself.
#include <sys/mman.h>

#include <atomic>

#include "absl/synchronization/notification.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/transfer/peer_process.h"
#include "tests/transfer/transfer_test_util.h"
#include "transfer/pool_descriptor.h"

namespace pdserve::transfer::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// 64 KiB blocks: batch B (one block) is small enough for local to copy inline on the
// submitting thread, and batch A (every other block, 128 MiB) takes local's copy threads tens
// of milliseconds, UCX over tcp longer: without the rule, B's notification would arrive long
// before A's last bytes.
constexpr char kPreset[] = "small";
constexpr uint32_t kBlocks = 2048;
constexpr BlockId kLast = kBlocks - 1;  // batch B's block
const absl::Duration kDeadline = absl::Seconds(60);

// Removes what a SIGKILLed receiver could not unlink itself.
void UnlinkShmOf(const std::string& descriptor) {
  absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(descriptor);
  if (d.ok() && d->fields.count("shm_name")) shm_unlink(d->fields.at("shm_name").c_str());
}

std::vector<BlockCopy> BatchA() {
  std::vector<BlockCopy> a;
  for (BlockId b = 0; b < kLast; ++b) a.push_back({b, b});
  return a;
}

class NotifyOrderTest : public ::testing::TestWithParam<BackendCase> {};

TEST_P(NotifyOrderTest, NotificationOfASmallBatchArrivesOnlyAfterEveryByteOfALargeEarlierOne) {
  const BackendCase& c = GetParam();
  const KvLayout layout = KvLayout::kLayerMajor;
  Side receiver = MakeSide(c, "decode", kPreset, kBlocks, layout);
  ASSERT_NE(receiver.transport, nullptr);
  // Built before the batches start: comparing against it must take no time once B is announced.
  auto expected = ExpectedPool(kPreset, kBlocks, layout, 11);
  PeerProcess sender(PeerArgs(c, layout, kPreset, kBlocks, "prefill"));
  ASSERT_EQ(sender.Command("fill 11"), "ok") << sender.hello();
  ASSERT_EQ(sender.Command("load " + *receiver.transport->ExportDescriptor()), "peer 1");

  const std::vector<BlockCopy> a = BatchA();
  sender.Send(absl::StrCat("sendpair 1 last ", CopiesArg(a), " ", kLast, ":", kLast));
  ASSERT_TRUE(receiver.transport->WaitForNotification("last", kDeadline).ok());
  // At once: A's last block is the last of it to land (its copies run in order, chunk by
  // chunk), so it tells whether A had landed when B was announced.
  EXPECT_EQ(MismatchedFragments(*expected, *receiver.cache, {{kLast - 1, kLast - 1}}), 0)
      << "B's notification arrived before batch A's last block landed";
  EXPECT_EQ(MismatchedFragments(*expected, *receiver.cache, a), 0);
  EXPECT_EQ(MismatchedFragments(*expected, *receiver.cache, {{kLast, kLast}}), 0);
  EXPECT_EQ(sender.ReadLine(), "done OK OK");
  // A carried no notification: B's is the only one.
  EXPECT_TRUE(receiver.transport->TakeNotifications().empty());
  EXPECT_EQ(receiver.transport->counters().notifications_received, 1u);
}

// WatchNotification (kv_transport.h) is held to the same rule as a waiter: the watch runs on
// the receive path only once every byte of the earlier batch is in place, and it consumes the
// notification (no waiter, no TakeNotifications sees it after).
TEST_P(NotifyOrderTest, AWatchRunsOnlyAfterEveryByteOfALargeEarlierBatchAndConsumesIt) {
  const BackendCase& c = GetParam();
  const KvLayout layout = KvLayout::kLayerMajor;
  Side receiver = MakeSide(c, "decode", kPreset, kBlocks, layout);
  ASSERT_NE(receiver.transport, nullptr);
  auto expected = ExpectedPool(kPreset, kBlocks, layout, 11);
  PeerProcess sender(PeerArgs(c, layout, kPreset, kBlocks, "prefill"));
  ASSERT_EQ(sender.Command("fill 11"), "ok") << sender.hello();
  ASSERT_EQ(sender.Command("load " + *receiver.transport->ExportDescriptor()), "peer 1");

  std::atomic<int> mismatched{-1};
  absl::Notification ran;
  ASSERT_TRUE(receiver.transport
                  ->WatchNotification("last",
                                      [&] {
                                        // A's last block lands last: checked the moment it runs.
                                        mismatched = static_cast<int>(MismatchedFragments(
                                            *expected, *receiver.cache, {{kLast - 1, kLast - 1}}));
                                        ran.Notify();
                                      })
                  .ok());
  EXPECT_EQ(receiver.transport->WatchNotification("last", [] {}).code(),
            absl::StatusCode::kAlreadyExists);
  const std::vector<BlockCopy> a = BatchA();
  sender.Send(absl::StrCat("sendpair 1 last ", CopiesArg(a), " ", kLast, ":", kLast));
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kDeadline));
  EXPECT_EQ(mismatched.load(), 0) << "the watch ran before batch A's last block landed";
  EXPECT_EQ(MismatchedFragments(*expected, *receiver.cache, a), 0);
  EXPECT_EQ(sender.ReadLine(), "done OK OK");
  EXPECT_EQ(receiver.transport->WaitForNotification("last", absl::ZeroDuration()).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(receiver.transport->TakeNotifications().empty());
  EXPECT_FALSE(receiver.transport->UnwatchNotification("last")) << "it ran: nothing to withdraw";
  EXPECT_EQ(receiver.transport->counters().notifications_received, 1u);
}

// How batch A is cut short for real: local stops its copy threads between chunks on RemovePeer
// (and the receiver, alive, shows that B's notification never comes); over tcp the receiver is
// killed mid-batch, which fails the endpoint. (RemovePeer of a tcp peer with data messages in
// flight is not used: UCX 1.13 then crashes the sender's progress thread once the receiver
// exits, in uct_tcp_iface_progress, in about half the runs.) UCX over shared memory copies a
// batch this large synchronously and cma puts complete in the call: nothing there can fail A
// once it started, so those cases skip.
TEST_P(NotifyOrderTest, ABatchBehindOneCutShortFailsAndItsNotificationNeverArrives) {
  const BackendCase& c = GetParam();
  if (c.backend == "ucx" && c.tls != "tcp") {
    GTEST_SKIP() << c.name << " cannot fail a batch once it started (see above)";
  }
  const KvLayout layout = KvLayout::kLayerMajor;
  Side sender = MakeSide(c, "prefill", kPreset, kBlocks, layout);
  ASSERT_NE(sender.transport, nullptr);
  FillPattern(sender.cache->base(), sender.cache->memory().size(), 5);
  PeerProcess receiver(PeerArgs(c, layout, kPreset, kBlocks, "decode"));
  const std::string descriptor = receiver.descriptor();
  ASSERT_FALSE(descriptor.empty()) << receiver.hello();
  absl::StatusOr<PeerId> peer = sender.transport->LoadPeer(descriptor);
  ASSERT_TRUE(peer.ok()) << peer.status();

  const std::vector<BlockCopy> a = BatchA();
  const std::vector<BlockCopy> b = {{kLast, kLast}};
  absl::StatusOr<TransferId> ia = sender.transport->Submit(*peer, a, "");
  absl::StatusOr<TransferId> ib = sender.transport->Submit(*peer, b, "last");
  ASSERT_TRUE(ia.ok()) << ia.status();
  ASSERT_TRUE(ib.ok()) << ib.status();
  const bool kill = c.backend == "ucx";
  if (kill) {
    receiver.Kill();
  } else {
    ASSERT_TRUE(sender.transport->RemovePeer(*peer).ok());
  }
  const absl::Status sa = sender.transport->Wait(*ia, kDeadline);
  const absl::Status sb = sender.transport->Wait(*ib, kDeadline);
  ASSERT_FALSE(sa.ok()) << "batch A was expected to be cut short";
  EXPECT_FALSE(sb.ok()) << "B completed although the batch before it failed: " << sa;
  if (c.backend == "local") {
    // B's own bytes were copied before RemovePeer: it fails because A did.
    EXPECT_THAT(std::string(sb.message()), HasSubstr("submitted before this one, failed"));
  }
  if (!kill) EXPECT_THAT(receiver.Command("wait last 500"), StartsWith("err DEADLINE_EXCEEDED"));
  EXPECT_EQ(sender.transport->counters().batches_failed, 2u);
  if (kill) UnlinkShmOf(descriptor);
}

INSTANTIATE_TEST_SUITE_P(Backends, NotifyOrderTest, ::testing::ValuesIn(AllBackends()),
                         [](const auto& info) { return info.param.name; });

// A zero-copy window's Announce (local) is a batch of 0 bytes like any: behind a large copy
// batch to the same peer, its notification waits for that batch's bytes, and the batch's
// failure withholds it. Both transports in this process (a window needs the mapped pool).
class NotifyOrderWindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const BackendCase local{"local", "", "local"};
    receiver_ = MakeSide(local, "decode", kPreset, kBlocks, KvLayout::kLayerMajor);
    sender_ = MakeSide(local, "prefill", kPreset, kBlocks, KvLayout::kLayerMajor);
    ASSERT_NE(receiver_.transport, nullptr);
    ASSERT_NE(sender_.transport, nullptr);
    FillPattern(sender_.cache->base(), sender_.cache->memory().size(), 13);
    absl::StatusOr<PeerId> peer =
        sender_.transport->LoadPeer(*receiver_.transport->ExportDescriptor());
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *peer;
    absl::StatusOr<std::unique_ptr<KvWriteWindow>> window =
        sender_.transport->OpenWindow(peer_, std::vector<BlockId>{kLast});
    ASSERT_TRUE(window.ok()) << window.status();
    window_ = std::move(*window);
  }

  Side receiver_, sender_;
  PeerId peer_ = 0;
  std::unique_ptr<KvWriteWindow> window_;
};

TEST_F(NotifyOrderWindowTest, AnAnnouncementArrivesOnlyAfterEveryByteOfALargeEarlierBatch) {
  auto expected = ExpectedPool(kPreset, kBlocks, KvLayout::kLayerMajor, 13);
  const std::vector<BlockCopy> a = BatchA();
  absl::StatusOr<TransferId> ia = sender_.transport->Submit(peer_, a, "");
  ASSERT_TRUE(ia.ok()) << ia.status();
  absl::StatusOr<TransferId> iw = window_->Announce("window");
  ASSERT_TRUE(iw.ok()) << iw.status();
  ASSERT_TRUE(receiver_.transport->WaitForNotification("window", kDeadline).ok());
  EXPECT_EQ(MismatchedFragments(*expected, *receiver_.cache, {{kLast - 1, kLast - 1}}), 0)
      << "the window's notification arrived before batch A's last block landed";
  EXPECT_EQ(MismatchedFragments(*expected, *receiver_.cache, a), 0);
  EXPECT_TRUE(sender_.transport->Wait(*ia, kDeadline).ok());
  EXPECT_TRUE(sender_.transport->Wait(*iw, kDeadline).ok());
}

TEST_F(NotifyOrderWindowTest, AnAnnouncementBehindABatchCutShortFailsAndNeverArrives) {
  absl::StatusOr<TransferId> ia = sender_.transport->Submit(peer_, BatchA(), "");
  ASSERT_TRUE(ia.ok()) << ia.status();
  absl::StatusOr<TransferId> iw = window_->Announce("window");
  ASSERT_TRUE(iw.ok()) << iw.status();
  ASSERT_TRUE(sender_.transport->RemovePeer(peer_).ok());
  EXPECT_EQ(sender_.transport->Wait(*ia, kDeadline).code(), absl::StatusCode::kCancelled);
  const absl::Status sw = sender_.transport->Wait(*iw, kDeadline);
  EXPECT_EQ(sw.code(), absl::StatusCode::kCancelled) << sw;
  EXPECT_THAT(std::string(sw.message()), HasSubstr("submitted before this one, failed"));
  EXPECT_EQ(receiver_.transport->WaitForNotification("window", absl::Milliseconds(500)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace pdserve::transfer::testing
