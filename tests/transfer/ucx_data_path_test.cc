// How the ucx backend moves a batch's bytes: puts where UCX has a put lane, our own data active
// messages where it would emulate puts (tcp), because UCX 1.13 aborts a receiver that handles an
// emulated put after its sender died, and streaming copies into the peer's pool as UCX maps it
// for batches larger than the last-level cache (posix). Both sides live in this process (two workers of one
// context); the fault tests in transfer_process_test.cc kill real processes.
#include <cstdlib>
#include <vector>

#include "gtest/gtest.h"
#include "tests/transfer/transfer_test_util.h"
#include "transfer/pool_descriptor.h"

namespace pdserve::transfer::testing {
namespace {

constexpr char kPreset[] = "small";  // 4 layers, 16 KiB fragments, 64 KiB blocks
constexpr uint32_t kBlocks = 16;
const absl::Duration kDeadline = absl::Seconds(30);

// Sender and receiver over `tls`, the sender's pool filled with FillPattern(seed), the receiver
// loaded as the sender's peer.
struct Pair {
  Side receiver;
  Side sender;
  PeerId peer = 0;
};

Pair Connect(const std::string& tls, uint64_t seed) {
  const BackendCase c{"ucx", tls, "ucx_" + tls};
  Pair p;
  p.receiver = MakeSide(c, "decode", kPreset, kBlocks, KvLayout::kBlockMajor);
  p.sender = MakeSide(c, "prefill", kPreset, kBlocks, KvLayout::kBlockMajor);
  if (p.receiver.transport == nullptr || p.sender.transport == nullptr) return p;
  FillPattern(p.sender.cache->base(), p.sender.cache->memory().size(), seed);
  absl::StatusOr<std::string> descriptor = p.receiver.transport->ExportDescriptor();
  EXPECT_TRUE(descriptor.ok()) << descriptor.status();
  absl::StatusOr<PeerId> peer = p.sender.transport->LoadPeer(descriptor.value_or(""));
  EXPECT_TRUE(peer.ok()) << peer.status();
  p.peer = peer.value_or(0);
  return p;
}

// Sends `copies` with `message`, then: once the notification came, every byte from the
// sender's pool (filled with `seed`) must be there, and nothing written outside `dst_blocks`.
void SendAndExpectExactlyLanded(Pair& p, const std::vector<BlockCopy>& copies,
                                const std::string& message, int seed,
                                const std::vector<BlockId>& dst_blocks) {
  absl::StatusOr<TransferId> id = p.sender.transport->Submit(p.peer, copies, message);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(p.sender.transport->Wait(*id, kDeadline).ok());
  ASSERT_TRUE(p.receiver.transport->WaitForNotification(message, kDeadline).ok());
  EXPECT_EQ(MismatchedFragments(*ExpectedPool(kPreset, kBlocks, KvLayout::kBlockMajor, seed),
                                *p.receiver.cache, copies),
            0);
  EXPECT_EQ(DirtyBlocksOutside(*p.receiver.cache, dst_blocks), 0);
}

// Blocks 0..7 into 8..15, block-major: one 512 KiB run, two data messages of 256 KiB over tcp.
const std::vector<BlockCopy> kLongRun = {{0, 8}, {1, 9},  {2, 10}, {3, 11},
                                         {4, 12}, {5, 13}, {6, 14}, {7, 15}};

TEST(UcxDataPathTest, OverTcpALongRunLandsExactlyAsDataMessagesBeforeItsNotification) {
  Pair p = Connect("tcp", 11);
  ASSERT_NE(p.peer, 0u);
  EXPECT_NE(p.sender.transport->counters().transports.find("(data as active messages)"),
            std::string::npos)
      << p.sender.transport->counters().transports;
  SendAndExpectExactlyLanded(p, kLongRun, "long-run", 11, {8, 9, 10, 11, 12, 13, 14, 15});
}

TEST(UcxDataPathTest, OverPosixBatchesArePuts) {
  Pair p = Connect("posix", 12);
  ASSERT_NE(p.peer, 0u);
  const std::string transports = p.sender.transport->counters().transports;
  EXPECT_NE(transports.find("posix"), std::string::npos) << transports;
  EXPECT_EQ(transports.find("(data as active messages)"), std::string::npos) << transports;
}

// PDSERVE_UCX_STREAM_BYTES=0 makes every batch "larger than the cache": the streaming path
// with a small batch, which lands exactly, before its notification.
TEST(UcxDataPathTest, OverPosixAStreamedBatchLandsExactlyBeforeItsNotification) {
  setenv("PDSERVE_UCX_STREAM_BYTES", "0", 1);  // read when a transport is created
  Pair p = Connect("posix", 13);
  unsetenv("PDSERVE_UCX_STREAM_BYTES");
  ASSERT_NE(p.peer, 0u);
  EXPECT_NE(p.sender.transport->counters().transports.find("streaming stores"), std::string::npos)
      << p.sender.transport->counters().transports;
  const std::vector<BlockCopy> scattered = {{0, 8}, {1, 9}, {5, 3}, {6, 1}, {15, 0}};
  SendAndExpectExactlyLanded(p, scattered, "streamed", 13, {8, 9, 3, 1, 0});
}

// A descriptor that claims more blocks than the peer's segment holds is refused when it is
// loaded: over posix the sender writes the peer's pool with its own stores through the mapping
// UCX made, and 64 times the blocks would run far past it.
TEST(UcxDataPathTest, OverPosixAPoolLargerThanItsMappingIsRefusedAtLoad) {
  const BackendCase c{"ucx", "posix", "ucx_posix"};
  Side receiver = MakeSide(c, "decode", kPreset, kBlocks, KvLayout::kBlockMajor);
  Side sender = MakeSide(c, "prefill", kPreset, kBlocks, KvLayout::kBlockMajor);
  ASSERT_NE(receiver.transport, nullptr);
  ASSERT_NE(sender.transport, nullptr);
  absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(*receiver.transport->ExportDescriptor());
  ASSERT_TRUE(d.ok()) << d.status();
  d->num_blocks = kBlocks * 64;
  absl::StatusOr<PeerId> peer = sender.transport->LoadPeer(d->Serialize());
  EXPECT_EQ(peer.status().code(), absl::StatusCode::kInvalidArgument) << peer.status();
  EXPECT_NE(peer.status().message().find("claims"), std::string::npos) << peer.status();
  // The true descriptor still loads.
  d->num_blocks = kBlocks;
  peer = sender.transport->LoadPeer(d->Serialize());
  ASSERT_TRUE(peer.ok()) << peer.status();
}

}  // namespace
}  // namespace pdserve::transfer::testing
