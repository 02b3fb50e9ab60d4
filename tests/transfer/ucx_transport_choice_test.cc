// Which transports `ucx` ends up on between two processes of this host, as UCX itself reports
// them (counters().transports, from the endpoint's lanes): plain ucx (UCX_TLS unset) must use
// shared memory, a UCX_TLS that leaves only tcp is flagged, and a peer on shared memory, which
// UCX cannot watch, still fails the batches in flight to it with Unavailable when it is killed.
#include <signal.h>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/transfer/peer_process.h"
#include "tests/transfer/transfer_test_util.h"

namespace pdserve::transfer::testing {
namespace {

constexpr char kPreset[] = "small";  // 64 KiB blocks
constexpr uint32_t kBlocks = 16;
const absl::Duration kDeadline = absl::Seconds(30);
const BackendCase kPlain{"ucx", "", "ucx_plain"};
const BackendCase kTcp{"ucx", "tcp", "ucx_tcp"};

// This process sends, a transfer_test_peer process receives; the peer is loaded.
struct Pair {
  Side sender;
  std::unique_ptr<PeerProcess> receiver;
  PeerId peer = 0;
};

void Connect(const BackendCase& c, Pair& p) {
  p.sender = MakeSide(c, "prefill", kPreset, kBlocks, KvLayout::kLayerMajor);
  ASSERT_NE(p.sender.transport, nullptr);
  p.receiver =
      std::make_unique<PeerProcess>(PeerArgs(c, KvLayout::kLayerMajor, kPreset, kBlocks, "decode"));
  ASSERT_FALSE(p.receiver->descriptor().empty()) << p.receiver->hello();
  absl::StatusOr<PeerId> peer = p.sender.transport->LoadPeer(p.receiver->descriptor());
  ASSERT_TRUE(peer.ok()) << peer.status();
  p.peer = *peer;
}

TEST(UcxTransportChoiceTest, PlainUcxBetweenTwoProcessesOfOneHostUsesSharedMemory) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(Connect(kPlain, p));
  const TransportCounters c = p.sender.transport->counters();
  // posix for active messages, cma for puts (UCX 1.13 with sysv excluded): no network lane.
  EXPECT_TRUE(absl::StrContains(c.transports, "posix/memory") ||
              absl::StrContains(c.transports, "cma/memory"))
      << c.transports;
  EXPECT_FALSE(absl::StrContains(c.transports, "tcp")) << c.transports;
  EXPECT_FALSE(absl::StrContains(c.transports, "same host over")) << c.transports;
  EXPECT_EQ(c.same_host_network_peers, 0u);
  // And it moves data.
  FillPattern(p.sender.cache->base(), p.sender.cache->memory().size(), 5);
  absl::StatusOr<TransferId> id = p.sender.transport->Submit(p.peer, {{{3, 7}}}, "one");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(p.sender.transport->Wait(*id, kDeadline).ok());
  EXPECT_EQ(p.receiver->Command("wait one 30000"), "ok");
}

TEST(UcxTransportChoiceTest, TcpOnlyBetweenTwoProcessesOfOneHostIsFlagged) {
  Pair p;
  ASSERT_NO_FATAL_FAILURE(Connect(kTcp, p));
  const TransportCounters c = p.sender.transport->counters();
  EXPECT_EQ(c.same_host_network_peers, 1u) << c.transports;
  EXPECT_TRUE(absl::StrContains(c.transports, "(same host over tcp/lo: no shared memory)"))
      << c.transports;
  EXPECT_TRUE(absl::StartsWith(c.transports, "tcp/lo")) << c.transports;
}

// The receiver is stopped, so that its shared-memory queue fills and notifications stay in
// flight, then killed: only the sender's pid watch can see it go.
TEST(UcxTransportChoiceTest, PlainUcxKilledReceiverFailsBatchesInFlightWithUnavailable) {
  unsetenv("UCX_TLS");
  TransportOptions options;
  options.backend = "ucx";
  options.agent_name = "prefill";
  options.max_inflight_batches = 1024;
  absl::StatusOr<std::unique_ptr<KvCache>> cache =
      CreatePoolCache(options, *PresetConfig(kPreset), kBlocks, KvLayout::kLayerMajor);
  ASSERT_TRUE(cache.ok()) << cache.status();
  absl::StatusOr<std::unique_ptr<KvTransport>> t = MakeKvTransport(options);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*t)->RegisterPool(**cache).ok());
  PeerProcess receiver(PeerArgs(kPlain, KvLayout::kLayerMajor, kPreset, kBlocks, "decode"));
  ASSERT_FALSE(receiver.descriptor().empty()) << receiver.hello();
  absl::StatusOr<PeerId> peer = (*t)->LoadPeer(receiver.descriptor());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_FALSE(absl::StrContains((*t)->counters().transports, "tcp"))
      << (*t)->counters().transports;

  ASSERT_TRUE(receiver.Stop());
  std::vector<TransferId> ids;
  for (int i = 0; i < 600; ++i) {
    absl::StatusOr<TransferId> id =
        (*t)->Submit(*peer, {{{static_cast<BlockId>(i % kBlocks), 0}}}, absl::StrCat("n-", i));
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  absl::StatusOr<bool> last_done = (*t)->Poll(ids.back());
  ASSERT_TRUE(last_done.ok()) << last_done.status();
  ASSERT_FALSE(*last_done) << "the stopped receiver took every notification: nothing in flight";

  receiver.Kill();
  int unavailable = 0;
  for (TransferId id : ids) {
    const absl::Status s = (*t)->Wait(id, kDeadline);
    EXPECT_TRUE(s.ok() || s.code() == absl::StatusCode::kUnavailable) << s;
    unavailable += s.code() == absl::StatusCode::kUnavailable;
  }
  EXPECT_GT(unavailable, 0);
  EXPECT_EQ((*t)->Wait(ids.back(), kDeadline).code(), absl::StatusCode::kNotFound);  // reaped
  // Later batches fail at once.
  absl::StatusOr<TransferId> after = (*t)->Submit(*peer, {{{0, 0}}}, "after");
  const absl::Status s = after.ok() ? (*t)->Wait(*after, kDeadline) : after.status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

}  // namespace
}  // namespace pdserve::transfer::testing
