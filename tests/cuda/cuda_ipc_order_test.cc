// kv_transport.h's Ordering rule on cuda-ipc (sender and receiver transports in this process,
// one GPU): a notification covers every batch sent to the peer before it, and a batch behind
// one that failed announces nothing. Skipped without a GPU, like the other cuda tests.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kBlocks = 2048;  // "small": 64 KiB blocks, 128 MiB pools
constexpr BlockId kLast = kBlocks - 1;

struct Pair {
  std::unique_ptr<KvCache> send_cache, recv_cache;
  std::unique_ptr<KvTransport> sender, receiver;
  std::vector<std::byte> pattern;  // the sender's pool
  PeerId peer = 0;
};

Pair MakePair() {
  const ModelConfig c = *PresetConfig("small");
  TransportOptions recv_opts{.backend = "cuda-ipc", .agent_name = "decode-order"};
  TransportOptions send_opts{.backend = "cuda-ipc", .agent_name = "prefill-order"};
  Pair p;
  p.recv_cache = *CreatePoolCache(recv_opts, c, kBlocks, KvLayout::kLayerMajor);
  p.send_cache = *CreatePoolCache(send_opts, c, kBlocks, KvLayout::kLayerMajor);
  p.receiver = *MakeKvTransport(recv_opts);
  p.sender = *MakeKvTransport(send_opts);
  EXPECT_TRUE(p.receiver->RegisterPool(*p.recv_cache).ok());
  EXPECT_TRUE(p.sender->RegisterPool(*p.send_cache).ok());
  p.pattern.resize(p.send_cache->geometry().region_bytes());
  for (size_t i = 0; i < p.pattern.size(); ++i) p.pattern[i] = std::byte((i * 131 + 7) >> 3);
  EXPECT_TRUE(cuda::CopyHostToDevice(p.pattern, p.send_cache->memory(), 0).ok());
  p.peer = *p.sender->LoadPeer(*p.receiver->ExportDescriptor());
  return p;
}

std::vector<BlockCopy> BatchA() {
  std::vector<BlockCopy> a;
  for (BlockId b = 0; b < kLast; ++b) a.push_back({b, b});
  return a;
}

TEST(CudaIpcOrderTest, NotificationOfASmallBatchComesAfterEveryByteOfALargeEarlierOne) {
  if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  Pair p = MakePair();
  const std::vector<BlockCopy> a = BatchA();
  const std::vector<BlockCopy> b = {{kLast, kLast}};
  absl::StatusOr<TransferId> ia = p.sender->Submit(p.peer, a, "");
  absl::StatusOr<TransferId> ib = p.sender->Submit(p.peer, b, "last");
  ASSERT_TRUE(ia.ok() && ib.ok());
  ASSERT_TRUE(p.receiver->WaitForNotification("last", absl::Seconds(30)).ok());
  std::vector<std::byte> got(p.pattern.size());
  ASSERT_TRUE(cuda::CopyDeviceToHost(p.recv_cache->memory(), 0, got).ok());
  // Identity copies of every block: the whole pool must equal the sender's.
  EXPECT_TRUE(got == p.pattern) << "B's notification came before batch A landed";
  EXPECT_TRUE(p.sender->Wait(*ia, absl::Seconds(30)).ok());
  EXPECT_TRUE(p.sender->Wait(*ib, absl::Seconds(30)).ok());
}

TEST(CudaIpcOrderTest, ABatchBehindOneThatFailedFailsAndAnnouncesNothing) {
  if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  Pair p = MakePair();
  const std::vector<BlockCopy> a = BatchA();
  const std::vector<BlockCopy> b = {{kLast, kLast}};
  absl::StatusOr<TransferId> ia = p.sender->Submit(p.peer, a, "");
  absl::StatusOr<TransferId> ib = p.sender->Submit(p.peer, b, "last");
  ASSERT_TRUE(ia.ok() && ib.ok());
  // A batch whose copies finished after this ends Cancelled (the device copy itself cannot be
  // stopped); one that ended before it (a fast GPU) leaves nothing to test.
  ASSERT_TRUE(p.sender->RemovePeer(p.peer).ok());
  const absl::Status sa = p.sender->Wait(*ia, absl::Seconds(30));
  const absl::Status sb = p.sender->Wait(*ib, absl::Seconds(30));
  if (sa.ok()) GTEST_SKIP() << "batch A ended before RemovePeer; B: " << sb;
  EXPECT_EQ(sb.code(), sa.code());
  EXPECT_THAT(std::string(sb.message()), HasSubstr("submitted before this one, failed"));
  EXPECT_EQ(p.receiver->WaitForNotification("last", absl::Milliseconds(500)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace pdserve::transfer
