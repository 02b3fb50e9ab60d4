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
#include "transfer/pool_descriptor.h"

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

// Eight batches of 4 MiB (64 blocks of 64 KiB) to `peer`, one after another: their copy waits
// and their times (Submit to completion) added up.
void SendRounds(KvTransport& sender, PeerId peer, int64_t* waited, int64_t* took) {
  std::vector<BlockCopy> copies;
  for (BlockId b = 0; b < 64; ++b) copies.push_back({b, b});
  for (int round = 0; round < 8; ++round) {
    absl::StatusOr<TransferId> id = sender.Submit(peer, copies, "");
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_TRUE(sender.Wait(*id, absl::Seconds(60)).ok());
    absl::StatusOr<TransferStats> stats = sender.Stats(*id);
    ASSERT_TRUE(stats.ok()) << stats.status();
    *waited += stats->copy_wait_ns;
    *took += stats->complete_ns - stats->submit_ns;
  }
}

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
    SendRounds(*sender.transport, *peer, &waited, &took);
  }
  EXPECT_GT(waited, took / 20) << "waited " << waited << " ns of " << took << " ns";
  // Both progress threads (the receiver's copies the data in) wait on the one CPU: two at most.
  EXPECT_LE(waited, 2 * took);
}

// Pins thread `tid` of this process to `cpu`.
void PinThread(int tid, int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ASSERT_EQ(sched_setaffinity(tid, sizeof(one), &one), 0) << "tid " << tid;
}

int ProgressTid(const KvTransport& t) {
  absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(*t.ExportDescriptor());
  EXPECT_TRUE(d.ok()) << d.status();
  int tid = 0;
  if (d.ok()) {
    EXPECT_TRUE(absl::SimpleAtoi(d->fields["progress_tid"], &tid));
  }
  return tid;
}

// ucx over tcp, the receiver's progress thread on a CPU with a spinner and the sender's alone on
// another: the receiver takes every byte off the socket, so its wait is the batch's. With only
// the sender's own delay counted (the rule before), these batches read about 0.
TEST(UcxCopyWaitTest, ASameHostReceiversWaitForACoreCountsForTcpData) {
  if (ThreadRunDelay::OfCallingThread().ReadNs() < 0) GTEST_SKIP() << "no schedstat";
  cpu_set_t all;
  ASSERT_EQ(sched_getaffinity(0, sizeof(all), &all), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c) {
    if (CPU_ISSET(c, &all)) cpus.push_back(c);
  }
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs";
  const BackendCase tcp{"ucx", "tcp", "ucx_tcp"};
  Side receiver = MakeSide(tcp, "decode", "small", 64, KvLayout::kBlockMajor);
  Side sender = MakeSide(tcp, "prefill", "small", 64, KvLayout::kBlockMajor);
  ASSERT_NE(receiver.transport, nullptr);
  ASSERT_NE(sender.transport, nullptr);
  PinThread(ProgressTid(*receiver.transport), cpus[0]);
  PinThread(ProgressTid(*sender.transport), cpus[1]);
  std::atomic<bool> stop{false};
  std::thread spinner([&] {
    PinThread(ThreadRunDelay::CallingThreadId(), cpus[0]);
    while (!stop.load(std::memory_order_relaxed)) {
    }
  });
  PinThread(ThreadRunDelay::CallingThreadId(), cpus[1]);
  absl::StatusOr<PeerId> peer = sender.transport->LoadPeer(*receiver.transport->ExportDescriptor());
  ASSERT_TRUE(peer.ok()) << peer.status();
  int64_t waited = 0, took = 0;
  SendRounds(*sender.transport, *peer, &waited, &took);
  stop.store(true);
  spinner.join();
  ASSERT_EQ(sched_setaffinity(0, sizeof(all), &all), 0);
  EXPECT_GT(waited, took / 20) << "waited " << waited << " ns of " << took << " ns";
  EXPECT_LE(waited, 2 * took);
}

}  // namespace
}  // namespace pdserve::transfer::testing
