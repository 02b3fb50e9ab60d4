// ucx with KV pools in device memory (a UCX with CUDA transports: the libucx-cu13 wheel through
// PDSERVE_UCX_ROOT): a second process (this binary re-executed as the receiver) exports a device
// pool; this process writes K/V on its device pool with the GPU kernels and puts blocks into it.
// The receiver checks, right after the notification and with nothing else to wait on, every byte
// of its pool against the CPU path, that its decode gives the CPU token, and that the
// notification came exactly once. Without a GPU, or with a UCX that cannot register device
// memory (Debian's), the round trips skip and the refusal is checked instead.

#include <signal.h>
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

namespace {

TransportOptions DeviceUcx(const std::string& agent) {
  TransportOptions options{.backend = "ucx", .agent_name = agent};
  options.pool_memory = MemoryKind::kCuda;
  return options;
}

// Why the device round trip cannot run here, or empty when it can.
std::string SkipReason() {
  if (!cuda::CudaAvailable()) return "no CUDA device here: GPU test skipped";
  absl::StatusOr<std::unique_ptr<KvMemory>> probe = AllocatePoolMemory(DeviceUcx("probe"), 4096);
  if (!probe.ok()) return "ucx cannot use device memory here: " + probe.status().ToString();
  return {};
}

}  // namespace

// The receiver process: exports its device pool on stdout, waits for the batch, verifies, exits.
int RunUcxReceiver(KvLayout layout) {
  const TransportOptions options = DeviceUcx("decode-0");
  auto cache = CreatePoolCache(options, TwoLayerLlama(), kPoolBlocks, layout);
  auto transport = MakeKvTransport(options);
  if (!cache.ok() || !transport.ok() || !(*transport)->RegisterPool(**cache).ok()) return 2;
  if ((*cache)->memory().kind() != MemoryKind::kCuda) return 9;
  std::printf("%s\n", (*(*transport)->ExportDescriptor()).c_str());
  std::fflush(stdout);
  if (!(*transport)->WaitForNotification("req-1", absl::Seconds(60)).ok()) return 3;
  if (layout == KvLayout::kBlockMajor && std::getenv("PDSERVE_UCX_HOLD") != nullptr) {
    for (;;) pause();  // killed by the test
  }
  if (int bad = CheckReceivedPrompt(**cache); bad != 0) return bad;
  // Exactly once: no second delivery of req-1, nothing else queued.
  if ((*transport)->WaitForNotification("req-1", absl::Seconds(1)).code() !=
      absl::StatusCode::kDeadlineExceeded) {
    return 10;
  }
  if (!(*transport)->TakeNotifications().empty()) return 11;
  if ((*transport)->counters().notifications_received != 1) return 12;
  return 0;
}

namespace {

class UcxDeviceTransportTest : public testing::TestWithParam<KvLayout> {};

TEST_P(UcxDeviceTransportTest, BlocksReachAnotherProcessesDevicePoolBeforeOneNotification) {
  if (std::string why = SkipReason(); !why.empty()) GTEST_SKIP() << why;
  absl::StatusOr<testing_util::SelfReceiver> receiver =
      testing_util::SpawnSelfReceiver("PDSERVE_UCX_RECEIVER", std::string(KvLayoutName(GetParam())));
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  const pid_t child = receiver->pid;
  const std::string& descriptor = receiver->descriptor;

  const TransportOptions options = DeviceUcx("prefill-0");
  auto cache = *CreatePoolCache(options, TwoLayerLlama(), kPoolBlocks, GetParam());
  ASSERT_EQ(cache->memory().kind(), MemoryKind::kCuda);
  absl::StatusOr<std::vector<BlockCopy>> copies = PrefillPrompt(*cache);
  ASSERT_TRUE(copies.ok()) << copies.status();

  auto transport = *MakeKvTransport(options);
  ASSERT_EQ(transport->backend(), "ucx");
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
  const std::string transports = transport->counters().transports;
  std::printf("ucx transports for device memory: %s\n", transports.c_str());
  EXPECT_NE(transports.find("cuda"), std::string::npos) << transports;
  // One host: the peer's pool mapped through ucp_rkey_ptr and copied by the batched kernel,
  // unless PDSERVE_UCX_DEVICE_PUTS=1 asks for UCX's puts.
  const char* puts = std::getenv("PDSERVE_UCX_DEVICE_PUTS");
  const bool want_puts = puts != nullptr && std::atoi(puts) != 0;
  EXPECT_EQ(transports.find("batched copy kernel through ucp_rkey_ptr") == std::string::npos,
            want_puts)
      << transports;
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "receiver: 3 no notification, 6 bytes differ, 8 token differs, 10-12 more than one "
         "notification";
}

INSTANTIATE_TEST_SUITE_P(Layouts, UcxDeviceTransportTest,
                         testing::Values(KvLayout::kLayerMajor, KvLayout::kBlockMajor),
                         [](const testing::TestParamInfo<KvLayout>& info) {
                           return info.param == KvLayout::kLayerMajor ? "LayerMajor" : "BlockMajor";
                         });

// Never OK unless right, nothing hangs: after the receiver died, batches to it end with an error
// (its pid watch, or the endpoint's) and this process's GPU still works.
TEST(UcxDeviceFailureTest, AKilledReceiverEndsLaterBatchesAndLeavesThisGpuUsable) {
  if (std::string why = SkipReason(); !why.empty()) GTEST_SKIP() << why;
  absl::StatusOr<testing_util::SelfReceiver> receiver = testing_util::SpawnSelfReceiver(
      "PDSERVE_UCX_RECEIVER", "block-major", {"PDSERVE_UCX_HOLD=1"});
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  const TransportOptions options = DeviceUcx("prefill-0");
  auto cache = *CreatePoolCache(options, TwoLayerLlama(), kPoolBlocks, KvLayout::kBlockMajor);
  absl::StatusOr<std::vector<BlockCopy>> copies = PrefillPrompt(*cache);
  ASSERT_TRUE(copies.ok()) << copies.status();
  auto transport = *MakeKvTransport(options);
  ASSERT_TRUE(transport->RegisterPool(*cache).ok());
  auto peer = transport->LoadPeer(receiver->descriptor);
  ASSERT_TRUE(peer.ok()) << peer.status();
  auto id = transport->Submit(*peer, *copies, "req-1");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(transport->Wait(*id, absl::Seconds(30)).ok());
  kill(receiver->pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(receiver->pid, &status, 0), receiver->pid);
  const absl::Time start = absl::Now();
  absl::Status last;
  for (int i = 0; i < 5 && (last.ok() || i < 2); ++i) {
    absl::StatusOr<TransferId> next = transport->Submit(*peer, *copies, "req-2");
    last = next.ok() ? transport->Wait(*next, absl::Seconds(30)) : next.status();
    absl::SleepFor(absl::Milliseconds(150));  // past the pid watch's period
  }
  EXPECT_FALSE(last.ok()) << "a batch to a dead receiver reported OK";
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  // The context is not poisoned: a fresh pool takes the GPU kernels' K/V again.
  auto again = CreatePoolCache(options, TwoLayerLlama(), kPoolBlocks, KvLayout::kBlockMajor);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(PrefillPrompt(**again).ok());
}

TEST(UcxDevicePoolTest, RefusedNamingUcxStagedWhenUcxCannotUseDeviceMemory) {
  absl::StatusOr<std::string> runtime = KvTransportRuntime("ucx");
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  std::printf("linked UCX: %s\n", runtime->c_str());
  absl::StatusOr<std::unique_ptr<KvMemory>> memory = AllocatePoolMemory(DeviceUcx("x"), 4096);
  if (runtime->find("CUDA memory: yes") != std::string::npos) {
    GTEST_SKIP() << "this UCX can use device memory (" << *runtime << ")";
  }
  ASSERT_FALSE(memory.ok());
  EXPECT_EQ(memory.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(memory.status().message().find("ucx-staged"), absl::string_view::npos);
  EXPECT_NE(memory.status().message().find("PDSERVE_UCX_ROOT"), absl::string_view::npos);
}

}  // namespace
}  // namespace pdserve::transfer

// Re-executed as the receiver (by the test above), this binary runs RunUcxReceiver instead of
// the tests (main, not a static initializer: CUDA's own static initializers must have run).
int main(int argc, char** argv) {
  if (const char* role = std::getenv("PDSERVE_UCX_RECEIVER"); role != nullptr) {
    return pdserve::transfer::RunUcxReceiver(std::string(role) == "block-major"
                                                 ? pdserve::KvLayout::kBlockMajor
                                                 : pdserve::KvLayout::kLayerMajor);
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
