// The run-queue delay of a thread (run_delay.h) and the ucx backend's copy_wait_ns built on it:
// with the process pinned to one CPU and a thread spinning there, the threads that move bytes
// are runnable part of the time without a core, and that time shows; a measurement that always
// read 0 (or wall minus CPU time of a sleeping thread) would fail these. Not timing thresholds:
// the spinner takes about half of the CPU and the tests ask for a twentieth.
#include "transfer/run_delay.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"
#include "tests/transfer/one_busy_cpu.h"
#include "tests/transfer/transfer_test_util.h"

namespace pdserve::transfer::testing {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TEST(ThreadRunDelayTest, ASpinningThreadSharingItsCpuWaitsForIt) {
  const ThreadRunDelay self = ThreadRunDelay::OfCallingThread();
  const int64_t before = self.ReadNs();
  if (before < 0) GTEST_SKIP() << "this kernel reports no schedstat";
  int64_t wall = 0;
  {
    OneBusyCpu busy;
    const int64_t start = NowNs();
    while (NowNs() - start < 300'000'000) {
    }
    wall = NowNs() - start;
  }
  const int64_t waited = self.ReadNs() - before;
  EXPECT_GT(waited, wall / 20) << "waited " << waited << " ns of " << wall << " ns";
  EXPECT_LE(waited, wall + 50'000'000);
}

TEST(ThreadRunDelayTest, ASleepingThreadDoesNotWait) {
  // Wall minus CPU time would count this sleep; the run-queue delay must not.
  const ThreadRunDelay self = ThreadRunDelay::OfCallingThread();
  const int64_t before = self.ReadNs();
  if (before < 0) GTEST_SKIP() << "this kernel reports no schedstat";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(self.ReadNs() - before, 50'000'000);
}

TEST(ThreadRunDelayTest, AnUnopenedOneReadsMinusOne) { EXPECT_EQ(ThreadRunDelay().ReadNs(), -1); }

// ucx over tcp: the sender's progress thread sends every byte (data active messages), so on a
// busy CPU the batches' copy_wait_ns add up to a good share of their time.
TEST(UcxCopyWaitTest, BatchesCountTheProgressThreadsWaitForACore) {
  if (ThreadRunDelay::OfCallingThread().ReadNs() < 0) GTEST_SKIP() << "no schedstat";
  const BackendCase tcp{"ucx", "tcp", "ucx_tcp"};
  int64_t waited = 0, took = 0;
  {
    OneBusyCpu busy;  // before the transports, whose threads inherit the one CPU
    Side receiver = MakeSide(tcp, "decode", "small", 64, KvLayout::kBlockMajor);
    Side sender = MakeSide(tcp, "prefill", "small", 64, KvLayout::kBlockMajor);
    ASSERT_NE(receiver.transport, nullptr);
    ASSERT_NE(sender.transport, nullptr);
    absl::StatusOr<PeerId> peer =
        sender.transport->LoadPeer(*receiver.transport->ExportDescriptor());
    ASSERT_TRUE(peer.ok()) << peer.status();
    std::vector<BlockCopy> copies;
    for (BlockId b = 0; b < 64; ++b) copies.push_back({b, b});  // 4 MiB of 64 KiB blocks
    for (int round = 0; round < 8; ++round) {
      absl::StatusOr<TransferId> id = sender.transport->Submit(*peer, copies, "");
      ASSERT_TRUE(id.ok()) << id.status();
      ASSERT_TRUE(sender.transport->Wait(*id, absl::Seconds(60)).ok());
      absl::StatusOr<TransferStats> stats = sender.transport->Stats(*id);
      ASSERT_TRUE(stats.ok()) << stats.status();
      waited += stats->copy_wait_ns;
      took += stats->complete_ns - stats->submit_ns;
    }
  }
  EXPECT_GT(waited, took / 20) << "waited " << waited << " ns of " << took << " ns";
  EXPECT_LE(waited, took);
}

}  // namespace
}  // namespace pdserve::transfer::testing
