// cuda-ipc round trips: a second process (this binary re-executed as the receiver) exports a
// device pool; this process writes K/V on its GPU pool and sends blocks into it. The receiver
// checks every byte of its pool against the CPU path and that its decode gives the CPU token.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>

#include "common/synthetic_model.h"
#include "gtest/gtest.h"
#include "tests/cuda/prompt_transfer.h"
#include "tests/cuda/self_receiver.h"
#include "kvcache/cpu_attention.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "transfer/kv_transport.h"


namespace pdserve::transfer {

using testing_util::CheckReceivedPrompt;
using testing_util::kPoolBlocks;
using testing_util::PrefillPrompt;
using testing_util::TwoLayerLlama;

// The receiver process: exports its pool on stdout, waits for the batch, verifies, exits.
int RunReceiver(KvLayout layout) {
  TransportOptions options{.backend = "cuda-ipc", .agent_name = "decode-0"};
  auto cache = CreatePoolCache(options, TwoLayerLlama(), kPoolBlocks, layout);
  auto transport = MakeKvTransport(options);
  if (!cache.ok() || !transport.ok() || !(*transport)->RegisterPool(**cache).ok()) return 2;
  std::printf("%s\n", (*(*transport)->ExportDescriptor()).c_str());
  std::fflush(stdout);
  if (!(*transport)->WaitForNotification("req-1", absl::Seconds(60)).ok()) return 3;
  return CheckReceivedPrompt(**cache);
}

namespace {

class CudaIpcTransportTest : public testing::TestWithParam<KvLayout> {};

TEST_P(CudaIpcTransportTest, BlocksReachAnotherProcessesDevicePoolWithTheCpuBytes) {
  if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  absl::StatusOr<testing_util::SelfReceiver> receiver =
      testing_util::SpawnSelfReceiver("PDSERVE_IPC_RECEIVER", std::string(KvLayoutName(GetParam())));
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  const pid_t child = receiver->pid;
  const std::string& descriptor = receiver->descriptor;

  TransportOptions options{.backend = "cuda-ipc", .agent_name = "prefill-0"};
  auto cache = *CreatePoolCache(options, TwoLayerLlama(), kPoolBlocks, GetParam());
  absl::StatusOr<std::vector<BlockCopy>> copies = PrefillPrompt(*cache);
  ASSERT_TRUE(copies.ok()) << copies.status();

  auto transport = *MakeKvTransport(options);
  ASSERT_TRUE(transport->RegisterPool(*cache).ok());
  // More blocks than the receiver allocated: refused when loaded, before any copy.
  const absl::Status inflated = testing_util::LoadInflatedPeer(*transport, descriptor);
  EXPECT_EQ(inflated.code(), absl::StatusCode::kInvalidArgument) << inflated;
  EXPECT_NE(inflated.message().find("claims"), std::string::npos) << inflated;
  auto peer = transport->LoadPeer(descriptor);
  ASSERT_TRUE(peer.ok()) << peer.status();
  auto id = transport->Submit(*peer, *copies, "req-1");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(transport->Wait(*id, absl::Seconds(30)).ok());
  EXPECT_EQ(transport->Stats(*id)->bytes,
            static_cast<uint64_t>(copies->size() * cache->geometry().block_bytes()));
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "receiver: 3 no notification, 6 bytes differ, 8 token differs";
}

INSTANTIATE_TEST_SUITE_P(Layouts, CudaIpcTransportTest,
                         testing::Values(KvLayout::kLayerMajor, KvLayout::kBlockMajor),
                         [](const testing::TestParamInfo<KvLayout>& info) {
                           return info.param == KvLayout::kLayerMajor ? "LayerMajor" : "BlockMajor";
                         });

TEST(CudaIpcSameProcessTest, PeerInThisProcessIsWrittenAndNotified) {
  if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  const ModelConfig c = *PresetConfig("small");
  TransportOptions recv_opts{.backend = "cuda-ipc", .agent_name = "decode-1"};
  TransportOptions send_opts{.backend = "cuda-ipc", .agent_name = "prefill-1"};
  auto recv_cache = *CreatePoolCache(recv_opts, c, 8, KvLayout::kLayerMajor);
  auto send_cache = *CreatePoolCache(send_opts, c, 8, KvLayout::kLayerMajor);
  auto receiver = *MakeKvTransport(recv_opts);
  auto sender = *MakeKvTransport(send_opts);
  ASSERT_TRUE(receiver->RegisterPool(*recv_cache).ok());
  ASSERT_TRUE(sender->RegisterPool(*send_cache).ok());
  std::vector<std::byte> pattern(send_cache->geometry().region_bytes());
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = std::byte(i * 7 + 1);
  ASSERT_TRUE(cuda::CopyHostToDevice(pattern, send_cache->memory(), 0).ok());
  auto peer = *sender->LoadPeer(*receiver->ExportDescriptor());
  std::vector<BlockCopy> copies = {{0, 5}, {1, 6}, {2, 2}};
  auto id = *sender->Submit(peer, copies, "req-2");
  ASSERT_TRUE(sender->Wait(id, absl::Seconds(10)).ok());
  ASSERT_TRUE(receiver->WaitForNotification("req-2", absl::Seconds(10)).ok());
  std::vector<std::byte> got(pattern.size());
  ASSERT_TRUE(cuda::CopyDeviceToHost(recv_cache->memory(), 0, got).ok());
  const KvGeometry& g = send_cache->geometry();
  for (const BlockCopy& copy : copies) {
    for (int f = 0; f < g.fragments_per_block(); ++f) {
      EXPECT_TRUE(std::equal(got.begin() + g.FragmentOffset(copy.dst, f),
                             got.begin() + g.FragmentOffset(copy.dst, f) + g.transfer_fragment_bytes(),
                             pattern.begin() + g.FragmentOffset(copy.src, f)))
          << "block " << copy.src << " -> " << copy.dst << " fragment " << f;
    }
  }
}

TEST(CudaIpcSameProcessTest, HostPoolIsRefused) {
  if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  auto cache = *KvCache::CreateInHostMemory(*PresetConfig("tiny"), 4, KvLayout::kLayerMajor);
  auto t = *MakeKvTransport({.backend = "cuda-ipc", .agent_name = "x"});
  EXPECT_EQ(t->RegisterPool(*cache).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::transfer

// Re-executed as the receiver (by the test above), this binary runs RunReceiver instead of
// the tests. It is main, not a static initializer: CUDA registers the kernels in static
// initializers of their own, which must have run before the first launch.
int main(int argc, char** argv) {
  if (const char* role = std::getenv("PDSERVE_IPC_RECEIVER"); role != nullptr) {
    return pdserve::transfer::RunReceiver(std::string(role) == "block-major"
                                              ? pdserve::KvLayout::kBlockMajor
                                              : pdserve::KvLayout::kLayerMajor);
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
