// Streaming-store copies (transfer/stream_copy.h): every byte lands for every size and
// alignment, the copy engine streams a job that asks for it, and the local backend streams a
// batch above its threshold and still lands it exactly before the notification.
#include "transfer/stream_copy.h"

#include <cstdlib>
#include <cstring>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/transfer/one_busy_cpu.h"
#include "tests/transfer/transfer_test_util.h"
#include "transfer/local/copy_engine.h"

namespace pdserve::transfer::testing {
namespace {

std::vector<std::byte> Pattern(size_t bytes, int seed) {
  std::vector<std::byte> v(bytes);
  for (size_t i = 0; i < bytes; ++i) v[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return v;
}

// Sizes around the 64-byte line and the head/tail split, at every source and destination
// misalignment within a line: exactly the source bytes, and nothing written past the end.
TEST(StreamCopyTest, CopiesExactlyAtEverySizeAndAlignment) {
  constexpr size_t kMax = 300;
  const std::vector<std::byte> src = Pattern(kMax + 128, 7);
  for (size_t size : {0, 1, 15, 16, 63, 64, 65, 127, 128, 129, 191, 255, 256, 299}) {
    for (size_t src_off = 0; src_off < 64; src_off += 7) {
      for (size_t dst_off = 0; dst_off < 64; dst_off += 5) {
        std::vector<std::byte> dst(kMax + 192, std::byte{0xee});
        StreamCopy(dst.data() + dst_off, src.data() + src_off, size);
        StoreFence();
        ASSERT_EQ(std::memcmp(dst.data() + dst_off, src.data() + src_off, size), 0)
            << "size " << size << " src+" << src_off << " dst+" << dst_off;
        for (size_t i = 0; i < dst.size(); ++i) {
          if (i >= dst_off && i < dst_off + size) continue;
          ASSERT_EQ(dst[i], std::byte{0xee}) << "byte " << i << " written outside the copy";
        }
      }
    }
  }
}

TEST(StreamCopyTest, ThresholdIsAtMostTheCapAndTheEnvironmentOverridesIt) {
  EXPECT_GT(DefaultStreamMinBytes(), 0u);
  EXPECT_LE(DefaultStreamMinBytes(), kMaxCachedBatchBytes);
  setenv("PDSERVE_TEST_STREAM_BYTES", "4096", 1);
  EXPECT_EQ(StreamMinBytes("PDSERVE_TEST_STREAM_BYTES"), 4096u);
  setenv("PDSERVE_TEST_STREAM_BYTES", "lots", 1);
  EXPECT_EQ(StreamMinBytes("PDSERVE_TEST_STREAM_BYTES"), DefaultStreamMinBytes());
  unsetenv("PDSERVE_TEST_STREAM_BYTES");
  EXPECT_EQ(StreamMinBytes("PDSERVE_TEST_STREAM_BYTES"), DefaultStreamMinBytes());
}

// Chunked (above kCallerShareMaxBytes), split and inline jobs, streamed: each lands exactly,
// odd-sized scattered operations included.
TEST(StreamCopyTest, CopyEngineStreamsEveryKindOfJobExactly) {
  local::CopyEngine engine(2);
  for (uint64_t total : {uint64_t{100} * 1024, uint64_t{3} << 20, uint64_t{9} << 20}) {
    const std::vector<std::byte> src = Pattern(total, static_cast<int>(total % 251));
    std::vector<std::byte> dst(total, std::byte{0});
    auto job = std::make_shared<local::CopyJob>();
    job->src_base = src.data();
    job->dst_base = dst.data();
    job->stream = true;
    // Reversed thirds of odd sizes: scattered sources and destinations.
    const uint64_t third = total / 3 + 13;
    job->ops = {{0, total - third, third}, {third, third - 29, total - 2 * third + 29},
                {total - third + 29, 0, third - 29}};
    std::atomic<bool> done{false};
    bool was_cancelled = true;
    job->done = [&](bool cancelled) {
      was_cancelled = cancelled;
      done.store(true);
    };
    engine.Run(job);
    while (!done.load()) std::this_thread::yield();
    EXPECT_FALSE(was_cancelled);
    for (const CopyOp& op : job->ops) {
      ASSERT_EQ(std::memcmp(dst.data() + op.dst, src.data() + op.src, op.bytes), 0)
          << total << " bytes, op at " << op.src;
    }
  }
}

// The copy threads' wait for a core (TransferStats::copy_wait_ns): with this process held to one
// CPU and a thread spinning on it, the copy threads can run only part of the time, so their
// waits add up to a good share of the jobs' wall time; the same jobs counted nothing if the
// engine did not measure. (Not a timing threshold: the spinner takes about half the CPU, and
// the test asks for a twentieth.)
TEST(StreamCopyTest, CopyEngineCountsTheTimeItsThreadsWaitedForACore) {
  int64_t waited = 0, wall = 0;
  {
    OneBusyCpu busy;  // before the engine, whose threads inherit the one CPU
    local::CopyEngine engine(2);
    constexpr uint64_t kBytes = uint64_t{64} << 20;
    const std::vector<std::byte> src = Pattern(kBytes, 3);
    std::vector<std::byte> dst(kBytes);
    for (int round = 0; round < 6; ++round) {
      auto job = std::make_shared<local::CopyJob>();
      job->src_base = src.data();
      job->dst_base = dst.data();
      job->stream = true;
      job->ops = {{0, 0, kBytes}};
      std::atomic<bool> done{false};
      job->done = [&](bool) { done.store(true); };
      const auto start = std::chrono::steady_clock::now();
      engine.Run(job);
      while (!done.load()) std::this_thread::yield();
      wall += std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
      waited += job->waited_ns.load();
    }
  }
  EXPECT_GT(waited, wall / 20) << "waited " << waited << " ns of " << wall << " ns";
}

// PDSERVE_LOCAL_STREAM_BYTES=0: every batch of the local backend streams; scattered blocks land
// exactly, nothing outside them, by the time the notification arrives.
TEST(StreamCopyTest, LocalBackendStreamedBatchLandsExactlyBeforeItsNotification) {
  constexpr char kPreset[] = "small";
  constexpr uint32_t kBlocks = 16;
  const BackendCase c{"local", "", "local"};
  setenv("PDSERVE_LOCAL_STREAM_BYTES", "0", 1);  // read when a transport is created
  Side receiver = MakeSide(c, "decode", kPreset, kBlocks, KvLayout::kLayerMajor);
  Side sender = MakeSide(c, "prefill", kPreset, kBlocks, KvLayout::kLayerMajor);
  unsetenv("PDSERVE_LOCAL_STREAM_BYTES");
  ASSERT_NE(receiver.transport, nullptr);
  ASSERT_NE(sender.transport, nullptr);
  EXPECT_NE(sender.transport->counters().transports.find("streaming stores above 0 KiB"),
            std::string::npos)
      << sender.transport->counters().transports;
  FillPattern(sender.cache->base(), sender.cache->memory().size(), 21);
  absl::StatusOr<std::string> descriptor = receiver.transport->ExportDescriptor();
  ASSERT_TRUE(descriptor.ok()) << descriptor.status();
  absl::StatusOr<PeerId> peer = sender.transport->LoadPeer(*descriptor);
  ASSERT_TRUE(peer.ok()) << peer.status();
  // Small (inline) and large (copy threads) batches both take the streaming path.
  const std::vector<std::vector<BlockCopy>> batches = {
      {{0, 8}, {5, 3}},
      {{1, 9}, {2, 10}, {3, 11}, {4, 12}, {6, 1}, {7, 0}, {9, 2}, {10, 4}, {15, 5}}};
  std::vector<BlockId> written;
  int k = 0;
  for (const std::vector<BlockCopy>& copies : batches) {
    const std::string message = "streamed-" + std::to_string(k++);
    absl::StatusOr<TransferId> id = sender.transport->Submit(*peer, copies, message);
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_TRUE(sender.transport->Wait(*id, absl::Seconds(30)).ok());
    ASSERT_TRUE(receiver.transport->WaitForNotification(message, absl::Seconds(30)).ok());
    EXPECT_EQ(MismatchedFragments(*ExpectedPool(kPreset, kBlocks, KvLayout::kLayerMajor, 21),
                                  *receiver.cache, copies),
              0);
    for (const BlockCopy& b : copies) written.push_back(b.dst);
    EXPECT_EQ(DirtyBlocksOutside(*receiver.cache, written), 0);
  }
}

}  // namespace
}  // namespace pdserve::transfer::testing
