// Issue 19: the nccl backend's control messages. They come from another process, so every
// malformed shape must be refused; and the receiver, planning from block ids against its own
// pool, must post exactly the runs the sender sends (NCCL pairs sends and receives by order and
// size), and refuse blocks outside its pool before it posts anything.

#include "transfer/nccl/nccl_protocol.h"

#include <random>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "transfer/copy_plan.h"
#include "transfer/notify/notify_channel.h"
#include "transfer/notification_inbox.h"

namespace pdserve::transfer::nccl {
namespace {

const ModelConfig& Tiny() {
  static const ModelConfig c = *PresetConfig("tiny");
  return c;
}

InitMessage SomeInit(const KvGeometry& g) {
  return {.generation = 42,
          .unique_id = std::string(kUniqueIdBytes, '\x5a'),
          .layout = g.layout(),
          .num_blocks = g.num_blocks(),
          .num_layers = static_cast<uint32_t>(g.config().num_layers),
          .fragment_bytes = static_cast<uint64_t>(g.fragment_bytes())};
}

TEST(NcclProtocolTest, EveryKindRoundTrips) {
  const KvGeometry sender(Tiny(), 40, KvLayout::kBlockMajor);
  absl::StatusOr<ControlMessage> init = Decode(Encode(SomeInit(sender)));
  ASSERT_TRUE(init.ok()) << init.status();
  const auto& i = std::get<InitMessage>(*init);
  EXPECT_EQ(i.generation, 42u);
  EXPECT_EQ(i.unique_id, std::string(kUniqueIdBytes, '\x5a'));
  EXPECT_EQ(i.layout, KvLayout::kBlockMajor);
  EXPECT_EQ(i.num_blocks, 40u);
  EXPECT_EQ(i.fragment_bytes, static_cast<uint64_t>(sender.fragment_bytes()));

  RecvMessage r{.generation = 7, .batch = 99, .copies = {{1, 2}, {3, 4}, {0xfffffffe, 5}}};
  absl::StatusOr<ControlMessage> recv = Decode(Encode(r));
  ASSERT_TRUE(recv.ok()) << recv.status();
  const auto& got = std::get<RecvMessage>(*recv);
  EXPECT_EQ(got.generation, 7u);
  EXPECT_EQ(got.batch, 99u);
  ASSERT_EQ(got.copies.size(), 3u);
  EXPECT_EQ(got.copies[2].src, 0xfffffffeu);
  EXPECT_EQ(got.copies[2].dst, 5u);

  absl::StatusOr<ControlMessage> notify = Decode(Encode(NotifyMessage{3, "req-1@epoch-2"}));
  ASSERT_TRUE(notify.ok());
  EXPECT_EQ(std::get<NotifyMessage>(*notify).message, "req-1@epoch-2");
  absl::StatusOr<ControlMessage> abort = Decode(Encode(AbortMessage{9}));
  ASSERT_TRUE(abort.ok());
  EXPECT_EQ(std::get<AbortMessage>(*abort).generation, 9u);
}

TEST(NcclProtocolTest, TheLargestMessagesFitOnePacket) {
  RecvMessage r{.copies = std::vector<BlockCopy>(kMaxCopiesPerRecv)};
  EXPECT_LE(Encode(r).size(), kMaxControlBytes);
  const std::string n = Encode(NotifyMessage{.message = std::string(kMaxNotificationBytes, 'x')});
  EXPECT_LE(n.size(), kMaxControlBytes);
  EXPECT_TRUE(Decode(n).ok());
  // The notification channel reads packets of kMaxNotificationBytes + 1024 (its kind and
  // sequence bytes included): a longer one would be cut short, not refused.
  EXPECT_LE(kMaxControlBytes + 5, kMaxNotificationBytes + 1024);
}

TEST(NcclProtocolTest, MalformedMessagesAreRefused) {
  const KvGeometry g(Tiny(), 8, KvLayout::kLayerMajor);
  const std::vector<std::string> valid = {
      Encode(SomeInit(g)), Encode(RecvMessage{.batch = 1, .copies = {{1, 2}}}),
      Encode(NotifyMessage{.message = "r"}), Encode(AbortMessage{})};
  for (const std::string& m : valid) {
    ASSERT_TRUE(Decode(m).ok());
    for (size_t cut = 0; cut < m.size(); ++cut) {
      EXPECT_FALSE(Decode(m.substr(0, cut)).ok()) << "prefix " << cut << " of kind " << m[0];
    }
    if (m[0] != 'N') {
      EXPECT_FALSE(Decode(m + "x").ok()) << "trailing byte, kind " << m[0];
    }
    std::string other_version = m;
    other_version[1] ^= 0x7f;
    EXPECT_FALSE(Decode(other_version).ok());
    std::string unknown_kind = m;
    unknown_kind[0] = 'Z';
    EXPECT_FALSE(Decode(unknown_kind).ok());
  }
  std::string bad_layout = valid[0];
  bad_layout[13] = 2;  // after kind, version, generation
  EXPECT_FALSE(Decode(bad_layout).ok());

  EXPECT_FALSE(Decode(Encode(RecvMessage{.batch = 1})).ok()) << "no copies";
  EXPECT_FALSE(Decode(Encode(RecvMessage{.copies = std::vector<BlockCopy>(kMaxCopiesPerRecv + 1)}))
                   .ok());
  std::string count_lies = Encode(RecvMessage{.copies = {{1, 2}, {3, 4}}});
  count_lies[1 + 4 + 8 + 8] = 3;  // says three pairs, carries two
  EXPECT_FALSE(Decode(count_lies).ok());
  EXPECT_FALSE(Decode(Encode(NotifyMessage{.message = ""})).ok());
  EXPECT_FALSE(Decode(Encode(NotifyMessage{.message = std::string(kMaxNotificationBytes + 1, 'x')}))
                   .ok());
  EXPECT_FALSE(Decode(std::string(kMaxControlBytes + 1, 'R')).ok());
}

TEST(NcclProtocolTest, ChunksCoverTheBatchInOrder) {
  std::vector<BlockCopy> copies(2 * kMaxCopiesPerRecv + 7);
  for (size_t i = 0; i < copies.size(); ++i) copies[i] = {static_cast<BlockId>(i), 0};
  const auto chunks = ChunkCopies(copies);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].size(), kMaxCopiesPerRecv);
  EXPECT_EQ(chunks[2].size(), 7u);
  BlockId next = 0;
  for (const auto& chunk : chunks) {
    for (const BlockCopy& c : chunk) EXPECT_EQ(c.src, next++);
  }
  EXPECT_EQ(next, copies.size());
  EXPECT_EQ(ChunkCopies({}).size(), 0u);
}

TEST(NcclProtocolTest, TheReceiverRefusesASenderOfAnotherShape) {
  const KvGeometry own(Tiny(), 16, KvLayout::kLayerMajor);
  EXPECT_TRUE(SenderGeometry(SomeInit(KvGeometry(Tiny(), 64, KvLayout::kLayerMajor)), own).ok());
  EXPECT_FALSE(SenderGeometry(SomeInit(KvGeometry(Tiny(), 64, KvLayout::kBlockMajor)), own).ok());
  InitMessage wrong = SomeInit(own);
  wrong.fragment_bytes += 2;
  EXPECT_FALSE(SenderGeometry(wrong, own).ok());
  wrong = SomeInit(own);
  wrong.num_layers += 1;
  EXPECT_FALSE(SenderGeometry(wrong, own).ok());
  wrong = SomeInit(own);
  wrong.num_blocks = 0;
  EXPECT_FALSE(SenderGeometry(wrong, own).ok());
}

// What both sides post for one batch: the sender plans against the pools it knows, the receiver
// against its own pool and the sender's shape as the Init carried it, chunk by chunk.
std::vector<uint64_t> PostedSizes(const KvGeometry& from, const KvGeometry& to,
                                  const std::vector<BlockCopy>& copies, bool dst_side) {
  std::vector<uint64_t> sizes;
  std::vector<CopyOp> ops;
  for (const auto& chunk : ChunkCopies(copies)) {
    EXPECT_TRUE(PlanCopies(from, to, chunk, ops).ok());
    for (const CopyOp& op : ops) {
      sizes.push_back(op.bytes);
      sizes.push_back(dst_side ? op.dst : op.src);
    }
  }
  return sizes;
}

TEST(NcclProtocolTest, SenderAndReceiverPostTheSameRunsInTheSameOrder) {
  std::mt19937 rng(19);
  for (KvLayout layout : {KvLayout::kLayerMajor, KvLayout::kBlockMajor}) {
    // Pools of equal size, so that copying every block of one to the same block of the other
    // merges whole layers into one run on both sides: only if the receiver plans with the
    // sender's true block count (which the Init carries). 400 blocks fit one Recv; 1000 take
    // three.
    for (uint32_t n : {400u, 1000u}) {
      const KvGeometry sender(Tiny(), n, layout);
      const KvGeometry receiver(Tiny(), n, layout);
      absl::StatusOr<ControlMessage> init = Decode(Encode(SomeInit(sender)));
      ASSERT_TRUE(init.ok());
      absl::StatusOr<KvGeometry> seen = SenderGeometry(std::get<InitMessage>(*init), receiver);
      ASSERT_TRUE(seen.ok()) << seen.status();
      for (bool scattered : {false, true}) {
        std::vector<BlockId> dst(n);
        for (size_t i = 0; i < dst.size(); ++i) dst[i] = static_cast<BlockId>(i);
        if (scattered) std::shuffle(dst.begin(), dst.end(), rng);
        std::vector<BlockCopy> copies;
        for (size_t i = 0; i < dst.size(); ++i) copies.push_back({static_cast<BlockId>(i), dst[i]});
        // Sizes must pair one to one; the receiver's destinations are what it computes itself.
        std::vector<uint64_t> s = PostedSizes(sender, receiver, copies, true);
        std::vector<uint64_t> r = PostedSizes(*seen, receiver, copies, true);
        EXPECT_EQ(s, r) << KvLayoutName(layout) << " " << n
                        << (scattered ? " scattered" : " contiguous");
        uint64_t bytes = 0;
        for (size_t i = 0; i < r.size(); i += 2) bytes += r[i];
        EXPECT_EQ(bytes, copies.size() * static_cast<uint64_t>(receiver.block_bytes()));
      }
    }
  }
}

TEST(NcclProtocolTest, BlocksOutsideTheReceiversPoolAreRefusedBeforeAnyReceive) {
  const KvGeometry sender(Tiny(), 64, KvLayout::kLayerMajor);
  const KvGeometry receiver(Tiny(), 16, KvLayout::kLayerMajor);
  std::vector<CopyOp> ops;
  const std::vector<BlockCopy> outside = {{1, 2}, {2, 16}};
  EXPECT_EQ(PlanCopies(sender, receiver, outside, ops).code(), absl::StatusCode::kInvalidArgument);
  const std::vector<BlockCopy> twice = {{1, 3}, {2, 3}};
  EXPECT_EQ(PlanCopies(sender, receiver, twice, ops).code(), absl::StatusCode::kInvalidArgument);
}

// The engine reads its control messages from a private inbox: it is woken by each Push and told
// when a sender's channel closes (then it aborts that sender's receives).
TEST(NcclControlChannelTest, TheInboxObserverSeesPushesAndLostSenders) {
  NotificationInbox inbox;
  std::atomic<int> pushes{0};
  std::mutex mu;
  std::vector<std::string> lost;
  absl::Notification lost_seen;
  inbox.SetObserver([&] { pushes.fetch_add(1); },
                    [&](const std::string& sender) {
                      std::lock_guard lock(mu);
                      lost.push_back(sender);
                      lost_seen.Notify();
                    });
  auto listener = notify::NotifyListener::Start(&inbox, "decode-0", "secret");
  ASSERT_TRUE(listener.ok()) << listener.status();
  {
    auto sender = notify::NotifySender::Connect((*listener)->address(), "prefill-7", "secret");
    ASSERT_TRUE(sender.ok()) << sender.status();
    ASSERT_TRUE((*sender)->Send(Encode(AbortMessage{5})).ok());
    ASSERT_TRUE(inbox.WaitFor(Encode(AbortMessage{5}), absl::Seconds(10)).ok());
  }  // the sender's channel closes
  ASSERT_TRUE(lost_seen.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(pushes.load(), 1);  // the listener's thread pushed, then saw the close
  std::lock_guard lock(mu);
  EXPECT_EQ(lost, std::vector<std::string>{"prefill-7"});
}

}  // namespace
}  // namespace pdserve::transfer::nccl
