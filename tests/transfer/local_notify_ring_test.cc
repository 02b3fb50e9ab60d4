// The local backend's notification ring (transfer/notify/notify_ring.h) between real processes:
// this process sends, a transfer_test_peer process receives and reports what arrived, in
// arrival order. Each test drives one path: the doorbell (receiver parked), the ring alone
// (receiver spinning, ring wrapping), the socket for messages longer than a slot, and the
// socket when the ring is full (receiver stopped).
#include <signal.h>
#include <sys/mman.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/transfer/peer_process.h"
#include "tests/transfer/transfer_test_util.h"
#include "transfer/notify/notify_ring.h"
#include "transfer/pool_descriptor.h"

namespace pdserve::transfer::testing {
namespace {

using notify::kRingPayloadBytes;
using notify::kRingSlots;

constexpr char kPreset[] = "small";  // 64 KiB blocks: every batch is copied inline
constexpr uint32_t kBlocks = 64;
const absl::Duration kDeadline = absl::Seconds(30);
constexpr int kCollectMs = 30000;

BackendCase Local() {
  const BackendCase c = AllBackends().front();
  EXPECT_EQ(c.backend, "local");
  return c;
}

// This process (sender) and a receiver process, connected.
class LocalRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sender_ = MakeSide(Local(), "prefill", kPreset, kBlocks, KvLayout::kLayerMajor);
    ASSERT_NE(sender_.transport, nullptr);
    FillPattern(sender_.cache->base(), sender_.cache->memory().size(), 6);
    receiver_ = std::make_unique<PeerProcess>(
        PeerArgs(Local(), KvLayout::kLayerMajor, kPreset, kBlocks, "decode"));
    ASSERT_FALSE(receiver_->descriptor().empty()) << receiver_->hello();
    absl::StatusOr<PeerId> peer = sender_.transport->LoadPeer(receiver_->descriptor());
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *peer;
  }
  void TearDown() override {
    if (receiver_ != nullptr && receiver_->pid() > 0) kill(receiver_->pid(), SIGCONT);  // stopped?
  }

  // One batch of one block (i-th, wrapping) with `message`; waits for it to complete.
  absl::Status SendOne(size_t i, const std::string& message) {
    const std::vector<BlockCopy> copy = {
        {static_cast<BlockId>(i % kBlocks), static_cast<BlockId>((i * 7) % kBlocks)}};
    absl::StatusOr<TransferId> id = sender_.transport->Submit(peer_, copy, message);
    if (!id.ok()) return id.status();
    return sender_.transport->Wait(*id, kDeadline);
  }

  // Every message in order, each its own batch, `gap` between them.
  void SendAll(const std::vector<std::string>& messages, absl::Duration gap) {
    for (size_t i = 0; i < messages.size(); ++i) {
      ASSERT_TRUE(SendOne(i, messages[i]).ok()) << "batch " << i;
      if (gap > absl::ZeroDuration()) absl::SleepFor(gap);
    }
  }

  // What the receiver got, in arrival order, once `n` arrived (or at the timeout).
  std::vector<std::string> Collect(size_t n) {
    const std::string line =
        receiver_->Command(absl::StrCat("collect ", n, " ", kCollectMs), kCollectMs + 10000);
    EXPECT_EQ(line.rfind("got ", 0), 0u) << line;
    if (line.size() <= 4) return {};
    return absl::StrSplit(line.substr(4), ',');
  }

  static std::vector<std::string> Messages(const std::string& prefix, size_t n) {
    std::vector<std::string> out;
    for (size_t i = 0; i < n; ++i) out.push_back(absl::StrCat(prefix, "-", i));
    return out;
  }

  Side sender_;
  std::unique_ptr<PeerProcess> receiver_;
  PeerId peer_ = 0;
};

// 2 ms between batches: the receiver's listener spins for tens of microseconds after each
// notification, then parks in poll(); every later notification must ring the doorbell.
TEST_F(LocalRingTest, BatchesWithPausesBetweenWakeTheParkedReceiverAndArriveOnceInOrder) {
  const std::vector<std::string> messages = Messages("paused", 25);
  SendAll(messages, absl::Milliseconds(2));
  EXPECT_EQ(Collect(messages.size()), messages);
}

// Back to back, more batches than the ring has slots: the receiver stays awake and the ring
// wraps several times.
TEST_F(LocalRingTest, BackToBackBatchesPastTheRingSizeArriveOnceInOrder) {
  const std::vector<std::string> messages = Messages("b2b", 3 * kRingSlots + 17);
  SendAll(messages, absl::ZeroDuration());
  EXPECT_EQ(Collect(messages.size()), messages);
}

// Messages longer than a slot take the socket, the short ones around them the ring: a slot
// published right after a packet must wait for it. Order holds across the two paths, with and
// without the receiver parked in between.
TEST_F(LocalRingTest, MessagesLongerThanASlotArriveWholeAndInOrderWithShortOnes) {
  std::vector<std::string> messages;
  for (int i = 0; i < 40; ++i) {
    std::string m = absl::StrCat("mixed-", i);
    if (i % 3 == 1) m += std::string(kRingPayloadBytes + 1 - m.size(), 'x');  // one byte over
    if (i % 7 == 5) m += std::string(kMaxNotificationBytes - m.size(), 'y');  // the longest
    messages.push_back(m);
  }
  SendAll(messages, absl::ZeroDuration());
  for (int i = 0; i < 10; ++i) {
    messages.push_back(absl::StrCat("late-", i, i % 2 ? std::string(kRingPayloadBytes, 'z') : ""));
    ASSERT_TRUE(SendOne(i, messages.back()).ok());
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_EQ(Collect(messages.size()), messages);
}

// The receiver is stopped (SIGSTOP): the ring fills up, the rest goes to the socket. After it
// resumes, the ring's messages come first, then the socket's, then the later ones, which take
// the ring again as it empties or the socket while it is still full.
TEST_F(LocalRingTest, FullRingFallsBackToTheSocketAndKeepsOrder) {
  ASSERT_EQ(receiver_->Command("collect 0 0"), "got ");  // up and idle
  ASSERT_TRUE(receiver_->Stop());
  const std::vector<std::string> stopped = Messages("stopped", kRingSlots + 40);
  SendAll(stopped, absl::ZeroDuration());
  ASSERT_EQ(kill(receiver_->pid(), SIGCONT), 0);
  const std::vector<std::string> resumed = Messages("resumed", 2 * kRingSlots);
  SendAll(resumed, absl::ZeroDuration());
  std::vector<std::string> expected = stopped;
  expected.insert(expected.end(), resumed.begin(), resumed.end());
  EXPECT_EQ(Collect(expected.size()), expected);
}

// A batch with no notification still needs a live receiver: the ring's liveness lock says so
// without a syscall, and a killed receiver fails the batch.
TEST_F(LocalRingTest, BatchWithoutNotificationSucceedsWhileTheReceiverLivesAndFailsAfter) {
  EXPECT_TRUE(SendOne(0, "").ok());
  receiver_->Kill();
  // What the killed receiver could not unlink itself.
  absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(receiver_->descriptor());
  if (d.ok() && d->fields.count("shm_name")) shm_unlink(d->fields.at("shm_name").c_str());
  EXPECT_EQ(SendOne(1, "").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(SendOne(2, "after").code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pdserve::transfer::testing
