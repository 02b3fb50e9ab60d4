// nccl (and cuda-ipc) round trips across two GPUs (issue 19): a second process (this binary re-executed, with
// the GPUs' order swapped so that its device 0 is the other GPU) exports a device pool; this
// process sends blocks into it with NCCL point-to-point. The receiver checks every byte of its
// pool, and its decode step's token, against the CPU path. Skips with a message where there are
// fewer than two GPUs or no nccl backend in the build.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/synthetic_model.h"
#include "gtest/gtest.h"
#include "kvcache/cpu_attention.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "tests/cuda/prompt_transfer.h"
#include "tests/cuda/self_receiver.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {

using testing_util::CheckReceivedPrompt;
using testing_util::kPoolBlocks;
using testing_util::PrefillPrompt;
using testing_util::TwoLayerLlama;

namespace {

constexpr uint32_t kManyBlocks = 1100;  // more than one Recv message's worth of block pairs
constexpr char kRole[] = "PDSERVE_NCCL_RECEIVER";

BlockId ManyDst(uint32_t i) { return (i * 7) % kManyBlocks; }  // a permutation (gcd 1)
std::byte Pattern(size_t i) { return std::byte(i * 7 + 1); }

TransportOptions Options(const std::string& agent, const std::string& backend = "nccl") {
  return {.backend = backend, .agent_name = agent, .batch_timeout = absl::Seconds(5)};
}

bool NcclBuilt() {
  const std::vector<std::string> b = KvTransportBackends();
  return std::find(b.begin(), b.end(), "nccl") != b.end();
}

// The receiver's CUDA_VISIBLE_DEVICES: this process's first two devices, swapped.
std::string SwappedDevices() {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  std::vector<std::string> ids =
      visible ? absl::StrSplit(visible, ',') : std::vector<std::string>{"0", "1"};
  if (ids.size() < 2) ids = {"0", "1"};
  std::swap(ids[0], ids[1]);
  return "CUDA_VISIBLE_DEVICES=" + absl::StrJoin(ids, ",");
}

#define SKIP_WITHOUT_TWO_GPUS()                                                          \
  if (!NcclBuilt()) GTEST_SKIP() << "no nccl backend in this build";                    \
  if (cuda::DeviceCount() < 2) GTEST_SKIP() << "fewer than two GPUs here: NCCL test skipped"

}  // namespace

// The receiver process ("backend/role"): exports its pool on stdout, waits for the
// notification, verifies, exits.
int RunNcclReceiver(const std::string& backend_role) {
  const std::string backend = backend_role.substr(0, backend_role.find('/'));
  const std::string role = backend_role.substr(backend_role.find('/') + 1);
  const bool many = role == "many";
  const KvLayout layout = role == "block-major" ? KvLayout::kBlockMajor : KvLayout::kLayerMajor;
  const ModelConfig c = many ? *PresetConfig("tiny") : TwoLayerLlama();
  const uint32_t blocks = many ? kManyBlocks : kPoolBlocks;
  const TransportOptions options = Options("decode-0", backend);
  auto cache = CreatePoolCache(options, c, blocks, layout);
  auto transport = MakeKvTransport(options);
  if (!cache.ok() || !transport.ok() || !(*transport)->RegisterPool(**cache).ok()) return 2;
  std::printf("%s\n", (*(*transport)->ExportDescriptor()).c_str());
  std::fflush(stdout);
  if (!(*transport)->WaitForNotification("req-1", absl::Seconds(60)).ok()) return 3;
  if (role == "hold") {
    for (;;) pause();  // killed by the test
  }
  if (!many) return CheckReceivedPrompt(**cache);
  const KvGeometry& g = (*cache)->geometry();
  std::vector<std::byte> got(g.region_bytes());
  if (!cuda::CopyDeviceToHost((*cache)->memory(), 0, got).ok()) return 5;
  // Block i of the sender (its pattern) now sits in block ManyDst(i), every fragment.
  for (uint32_t i = 0; i < kManyBlocks - 100; ++i) {
    for (int f = 0; f < g.fragments_per_block(); ++f) {
      const int64_t from = g.FragmentOffset(i, f), to = g.FragmentOffset(ManyDst(i), f);
      for (int64_t b = 0; b < g.transfer_fragment_bytes(); ++b) {
        if (got[to + b] != Pattern(from + b)) return 6;
      }
    }
  }
  return 0;
}

namespace {

int WaitChild(pid_t child) {
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// Two batches, the notification on the second only: it covers the first (kv_transport.h).
void SendPromptAcrossGpus(const std::string& backend, KvLayout layout) {
  auto receiver = testing_util::SpawnSelfReceiver(
      kRole, backend + "/" + std::string(KvLayoutName(layout)), {SwappedDevices()});
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  const TransportOptions options = Options("prefill-0", backend);
  auto cache = *CreatePoolCache(options, TwoLayerLlama(), kPoolBlocks, layout);
  absl::StatusOr<std::vector<BlockCopy>> prompt_copies = PrefillPrompt(*cache);
  ASSERT_TRUE(prompt_copies.ok()) << prompt_copies.status();
  const std::vector<BlockCopy>& copies = *prompt_copies;

  auto transport = *MakeKvTransport(options);
  ASSERT_TRUE(transport->RegisterPool(*cache).ok());
  auto peer = transport->LoadPeer(receiver->descriptor);
  ASSERT_TRUE(peer.ok()) << peer.status();
  const size_t half = copies.size() / 2;
  auto first = transport->Submit(*peer, std::span(copies).first(half), "");
  auto second = transport->Submit(*peer, std::span(copies).subspan(half), "req-1");
  ASSERT_TRUE(first.ok() && second.ok()) << first.status() << second.status();
  ASSERT_TRUE(transport->Wait(*first, absl::Seconds(60)).ok());
  ASSERT_TRUE(transport->Wait(*second, absl::Seconds(60)).ok());
  EXPECT_EQ(transport->Stats(*first)->bytes + transport->Stats(*second)->bytes,
            static_cast<uint64_t>(copies.size() * cache->geometry().block_bytes()));
  if (backend == "cuda-ipc") {
    EXPECT_NE(transport->PeerTransports(*peer).find("peer GPU 1"), std::string::npos)
        << transport->PeerTransports(*peer);
  }
  EXPECT_EQ(WaitChild(receiver->pid), 0)
      << "receiver: 3 no notification, 6 bytes differ, 8 token differs";
}

class NcclTransportTest : public testing::TestWithParam<KvLayout> {};

TEST_P(NcclTransportTest, BlocksReachAPoolOnAnotherGpuWithTheCpuBytes) {
  SKIP_WITHOUT_TWO_GPUS();
  SendPromptAcrossGpus("nccl", GetParam());
}

// cuda-ipc between two GPUs: the sender's kernel writes the peer's pool over peer access.
TEST_P(NcclTransportTest, CudaIpcReachesAPoolOnAnotherGpuToo) {
  if (cuda::DeviceCount() < 2) GTEST_SKIP() << "fewer than two GPUs here: test skipped";
  SendPromptAcrossGpus("cuda-ipc", GetParam());
}

INSTANTIATE_TEST_SUITE_P(Layouts, NcclTransportTest,
                         testing::Values(KvLayout::kLayerMajor, KvLayout::kBlockMajor),
                         [](const testing::TestParamInfo<KvLayout>& info) {
                           return info.param == KvLayout::kLayerMajor ? "LayerMajor" : "BlockMajor";
                         });

TEST(NcclManyBlocksTest, ABatchOfMoreBlocksThanOneControlMessageLandsWhole) {
  SKIP_WITHOUT_TWO_GPUS();
  auto receiver = testing_util::SpawnSelfReceiver(kRole, "nccl/many", {SwappedDevices()});
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  const TransportOptions options = Options("prefill-0");
  auto cache = *CreatePoolCache(options, *PresetConfig("tiny"), kManyBlocks, KvLayout::kLayerMajor);
  std::vector<std::byte> pattern(cache->geometry().region_bytes());
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = Pattern(i);
  ASSERT_TRUE(cuda::CopyHostToDevice(pattern, cache->memory(), 0).ok());
  auto transport = *MakeKvTransport(options);
  ASSERT_TRUE(transport->RegisterPool(*cache).ok());
  auto peer = transport->LoadPeer(receiver->descriptor);
  ASSERT_TRUE(peer.ok()) << peer.status();
  std::vector<BlockCopy> copies;
  for (uint32_t i = 0; i < kManyBlocks - 100; ++i) copies.push_back({i, ManyDst(i)});
  auto id = transport->Submit(*peer, copies, "req-1");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(transport->Wait(*id, absl::Seconds(60)).ok());
  EXPECT_EQ(WaitChild(receiver->pid), 0) << "receiver: 3 no notification, 6 bytes differ";
}

// Never OK unless right, and nothing hangs: batches to a receiver that died end Unavailable
// within the transfer timeout.
TEST(NcclFailureTest, AKilledReceiverEndsLaterBatchesWithUnavailable) {
  SKIP_WITHOUT_TWO_GPUS();
  auto receiver = testing_util::SpawnSelfReceiver(kRole, "nccl/hold", {SwappedDevices()});
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  const ModelConfig c = TwoLayerLlama();
  const TransportOptions options = Options("prefill-0");
  auto cache = *CreatePoolCache(options, c, kPoolBlocks, KvLayout::kLayerMajor);
  auto transport = *MakeKvTransport(options);
  ASSERT_TRUE(transport->RegisterPool(*cache).ok());
  auto peer = *transport->LoadPeer(receiver->descriptor);
  const std::vector<BlockCopy> copies = {{0, 1}, {1, 2}};
  auto id = *transport->Submit(peer, copies, "req-1");
  ASSERT_TRUE(transport->Wait(id, absl::Seconds(60)).ok());
  kill(receiver->pid, SIGKILL);
  WaitChild(receiver->pid);
  const absl::Time start = absl::Now();
  absl::Status last;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<TransferId> next = transport->Submit(peer, copies, "req-2");
    last = next.ok() ? transport->Wait(*next, absl::Seconds(30)) : next.status();
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kUnavailable) << last;
  EXPECT_LT(absl::Now() - start, absl::Seconds(20)) << "3 batches past a 5 s transfer timeout";
}

// NCCL refuses two ranks of one communicator on one device: said at LoadPeer, not a hang.
TEST(NcclPlacementTest, APeerOnThisProcesssGpuIsRefusedAtLoadPeer) {
  if (!NcclBuilt()) GTEST_SKIP() << "no nccl backend in this build";
  if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  const ModelConfig c = *PresetConfig("tiny");
  auto recv_cache = *CreatePoolCache(Options("decode-1"), c, 8, KvLayout::kLayerMajor);
  auto send_cache = *CreatePoolCache(Options("prefill-1"), c, 8, KvLayout::kLayerMajor);
  auto receiver = *MakeKvTransport(Options("decode-1"));
  auto sender = *MakeKvTransport(Options("prefill-1"));
  ASSERT_TRUE(receiver->RegisterPool(*recv_cache).ok());
  ASSERT_TRUE(sender->RegisterPool(*send_cache).ok());
  absl::StatusOr<PeerId> peer = sender->LoadPeer(*receiver->ExportDescriptor());
  EXPECT_EQ(peer.status().code(), absl::StatusCode::kFailedPrecondition) << peer.status();
  EXPECT_NE(peer.status().message().find("different GPUs"), std::string::npos) << peer.status();
}

TEST(NcclPlacementTest, AHostPoolIsRefused) {
  if (!NcclBuilt()) GTEST_SKIP() << "no nccl backend in this build";
  if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  auto cache = *KvCache::CreateInHostMemory(*PresetConfig("tiny"), 4, KvLayout::kLayerMajor);
  auto t = *MakeKvTransport(Options("x"));
  EXPECT_EQ(t->RegisterPool(*cache).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::transfer

// Re-executed as the receiver, this binary runs RunNcclReceiver instead of the tests (main, not
// a static initializer: CUDA registers its kernels in static initializers of its own).
int main(int argc, char** argv) {
  if (const char* role = std::getenv(pdserve::transfer::kRole); role != nullptr) {
    return pdserve::transfer::RunNcclReceiver(role);
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
