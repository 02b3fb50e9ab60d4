// Zero-copy windows (kv_window.h): a sender's kernels write exactly the blocks the receiver
// reserved, in place in the receiver's pool, and the "transfer" is the notification alone; any
// other block is refused before a byte is written.
#include <cstring>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvcache/cpu_attention.h"
#include "tests/transfer/transfer_test_util.h"

namespace pdserve::transfer::testing {
namespace {

using ::testing::HasSubstr;

const BackendCase kLocal{"local", "", "local"};

class KvWindowTest : public ::testing::TestWithParam<KvLayout> {
 protected:
  void SetUp() override {
    receiver_ = MakeSide(kLocal, "decode", "tiny", 8, GetParam());
    sender_ = MakeSide(kLocal, "prefill", "tiny", 4, GetParam());
    ASSERT_NE(receiver_.transport, nullptr);
    ASSERT_NE(sender_.transport, nullptr);
    absl::StatusOr<PeerId> peer = sender_.transport->LoadPeer(*receiver_.transport->ExportDescriptor());
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *peer;
  }

  std::vector<int32_t> Prompt(size_t blocks) const {
    std::vector<int32_t> tokens(blocks * receiver_.cache->config().block_size - 3);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7 + 1) % 50);
    return tokens;
  }

  Side receiver_, sender_;
  PeerId peer_ = 0;
};

TEST_P(KvWindowTest, KernelsWriteTheReservedBlocksInPlaceAndTheTransferIsTheNotification) {
  const std::vector<BlockId> reserved = {5, 2, 7};
  absl::StatusOr<std::unique_ptr<KvWriteWindow>> window =
      sender_.transport->OpenWindow(peer_, reserved);
  ASSERT_TRUE(window.ok()) << window.status();
  EXPECT_EQ(std::vector<BlockId>((*window)->blocks().begin(), (*window)->blocks().end()), reserved);
  const std::vector<int32_t> prompt = Prompt(reserved.size());
  ASSERT_TRUE((*window)
                  ->Use(reserved,
                        [&](const KvCache& pool, std::span<const BlockId> blocks) {
                          return PrefillAttention(pool, blocks, prompt, 0, {});
                        })
                  .ok());
  // The receiver's pool now holds exactly what the kernels write into a pool of their own at
  // the same blocks: every byte of the reserved blocks, nothing elsewhere.
  std::unique_ptr<KvCache> expected = *KvCache::CreateInHostMemory(
      receiver_.cache->config(), receiver_.cache->geometry().num_blocks(), GetParam());
  ASSERT_TRUE(PrefillAttention(*expected, reserved, prompt, 0, {}).ok());
  EXPECT_EQ(std::memcmp(receiver_.cache->base(), expected->base(),
                        static_cast<size_t>(expected->geometry().region_bytes())),
            0);
  EXPECT_EQ(DirtyBlocksOutside(*receiver_.cache, reserved), 0);
  EXPECT_EQ((*window)->bytes(), 3u * receiver_.cache->geometry().block_bytes());

  absl::StatusOr<TransferId> id = (*window)->Announce("req-1@9");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(sender_.transport->Wait(*id, absl::Seconds(5)).ok());
  absl::StatusOr<TransferStats> stats = sender_.transport->Stats(*id);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->bytes, 0u);
  EXPECT_EQ(stats->operations, 0u);
  EXPECT_TRUE(receiver_.transport->WaitForNotification("req-1@9", absl::Seconds(5)).ok());
  // The sender's own pool was never touched.
  EXPECT_EQ(DirtyBlocksOutside(*sender_.cache, {}), 0);
}

TEST_P(KvWindowTest, AWriteOutsideTheReservedBlocksIsRefusedAndWritesNothing) {
  absl::StatusOr<std::unique_ptr<KvWriteWindow>> window =
      sender_.transport->OpenWindow(peer_, std::vector<BlockId>{1, 2});
  ASSERT_TRUE(window.ok()) << window.status();
  bool ran = false;
  const std::vector<int32_t> prompt = Prompt(2);
  const std::vector<BlockId> outside = {1, 3};  // block 3 belongs to another request
  absl::Status s = (*window)->Use(outside, [&](const KvCache& pool, std::span<const BlockId> b) {
    ran = true;
    return PrefillAttention(pool, b, prompt, 0, {});
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), HasSubstr("block 3 is not one of the 2 blocks reserved"));
  EXPECT_FALSE(ran);
  EXPECT_EQ(DirtyBlocksOutside(*receiver_.cache, {}), 0);
}

TEST_P(KvWindowTest, ADestinationTheReceiverCannotHaveGrantedIsRefusedAtOpen) {
  const std::vector<std::vector<BlockId>> bad = {{8}, {1, 8}, {3, 3}, {}};
  for (const auto& blocks : bad) {
    EXPECT_EQ(sender_.transport->OpenWindow(peer_, blocks).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(sender_.transport->OpenWindow(peer_ + 100, std::vector<BlockId>{1}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(KvWindowTest, AWindowOfARemovedPeerAnnouncesNothing) {
  absl::StatusOr<std::unique_ptr<KvWriteWindow>> window =
      sender_.transport->OpenWindow(peer_, std::vector<BlockId>{4});
  ASSERT_TRUE(window.ok()) << window.status();
  ASSERT_TRUE(sender_.transport->RemovePeer(peer_).ok());
  absl::StatusOr<TransferId> id = (*window)->Announce("req-2@1");
  if (id.ok()) {
    EXPECT_EQ(sender_.transport->Wait(*id, absl::Seconds(5)).code(), absl::StatusCode::kCancelled);
  }
  EXPECT_EQ(receiver_.transport->WaitForNotification("req-2@1", absl::Milliseconds(100)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

INSTANTIATE_TEST_SUITE_P(Layouts, KvWindowTest,
                         ::testing::Values(KvLayout::kLayerMajor, KvLayout::kBlockMajor),
                         [](const auto& info) {
                           return std::string(KvLayoutName(info.param)) == "layer-major"
                                      ? std::string("LayerMajor")
                                      : std::string("BlockMajor");
                         });

TEST(KvWindowBackendTest, ABackendThatCannotMapThePeerSaysSo) {
  TransportOptions o;
  o.backend = "inproc";
  o.agent_name = "colocated-0";
  std::unique_ptr<KvCache> cache = *CreatePoolCache(o, *PresetConfig("tiny"), 4, KvLayout::kLayerMajor);
  std::unique_ptr<KvTransport> t = *MakeKvTransport(o);
  ASSERT_TRUE(t->RegisterPool(*cache).ok());
  PeerId self = *t->LoadPeer(*t->ExportDescriptor());
  EXPECT_FALSE(t->can_open_windows());
  EXPECT_EQ(t->OpenWindow(self, std::vector<BlockId>{1}).status().code(),
            absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace pdserve::transfer::testing
