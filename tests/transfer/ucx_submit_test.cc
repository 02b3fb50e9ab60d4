// The ucx backend's ways of issuing a batch: on the submitting thread (host-memory batches up
// to PDSERVE_UCX_INLINE_BYTES, when the worker is free, to peers reached with puts) or on the
// progress thread (the rest, and every batch to a tcp peer: data active messages), as puts or
// (above PDSERVE_UCX_STREAM_BYTES, to a pool mapped through ucp_rkey_ptr) as streaming-store
// copies. Both sides in the test process; every case runs with inline issue off, on for small
// batches only (large ones still go to the progress thread, so both paths mix on one
// endpoint), on for all, and with streaming copies for the large or for all batches.
#include <cstdlib>
#include <map>
#include <thread>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/transfer/transfer_test_util.h"

namespace pdserve::transfer::testing {
namespace {

constexpr char kPreset[] = "small";  // 64 KiB blocks
constexpr uint64_t kBlockBytes = 64 * 1024;
const absl::Duration kDeadline = absl::Seconds(30);

struct InlineCase {
  const char* inline_bytes;  // PDSERVE_UCX_INLINE_BYTES
  const char* stream_bytes;  // PDSERVE_UCX_STREAM_BYTES
  const char* name;
};

void PrintTo(const InlineCase& c, std::ostream* os) { *os << c.name; }

class UcxSubmitTest : public ::testing::TestWithParam<std::tuple<BackendCase, InlineCase>> {
 protected:
  void SetUp() override {
    const auto& [c, inline_case] = GetParam();
    // Read by each new transport.
    setenv("PDSERVE_UCX_INLINE_BYTES", inline_case.inline_bytes, 1);
    setenv("PDSERVE_UCX_STREAM_BYTES", inline_case.stream_bytes, 1);
    receiver_ = MakeSide(c, "decode", kPreset, kReceiverBlocks, KvLayout::kLayerMajor);
    sender_ = MakeSide(c, "prefill", kPreset, kSenderBlocks, KvLayout::kLayerMajor);
    unsetenv("PDSERVE_UCX_INLINE_BYTES");
    unsetenv("PDSERVE_UCX_STREAM_BYTES");
    ASSERT_NE(receiver_.transport, nullptr);
    ASSERT_NE(sender_.transport, nullptr);
    FillPattern(sender_.cache->base(), sender_.cache->memory().size(), 21);
    absl::StatusOr<PeerId> peer = sender_.transport->LoadPeer(*receiver_.transport->ExportDescriptor());
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *peer;
  }

  // Batch `i` of thread `t`: 1 block, or 8 (512 KiB, above the small-only threshold) every
  // fourth batch; destinations of their own (no batch overwrites another's), sources shared.
  static uint32_t BatchBlocks(int i) { return i % 4 == 3 ? 8 : 1; }
  static std::vector<BlockCopy> BatchCopies(int t, int i) {
    uint32_t dst = t * kBlocksPerThread;
    for (int j = 0; j < i; ++j) dst += BatchBlocks(j);
    std::vector<BlockCopy> copies;
    for (uint32_t b = 0; b < BatchBlocks(i); ++b) {
      copies.push_back({static_cast<BlockId>((t * 7 + i + b) % kSenderBlocks), dst + b});
    }
    return copies;
  }

  static constexpr int kThreads = 4;
  static constexpr int kBatches = 24;
  static constexpr uint32_t kBlocksPerThread = 66;  // 18 batches of 1 block, 6 of 8
  static constexpr uint32_t kReceiverBlocks = kThreads * kBlocksPerThread;
  static constexpr uint32_t kSenderBlocks = 48;
  Side receiver_, sender_;
  PeerId peer_ = 0;
};

// Several threads submit at once, each keeping up to 8 batches in flight: every batch
// completes, the receiver gets each notification exactly once, each thread's notifications
// arrive in the order that thread submitted them, and a batch's bytes are in place when its
// notification is taken.
TEST_P(UcxSubmitTest, ConcurrentSubmittersGetOneNotificationPerBatchInSubmitOrderAfterTheData) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &failures] {
      std::vector<TransferId> inflight;
      for (int i = 0; i < kBatches; ++i) {
        absl::StatusOr<TransferId> id =
            sender_.transport->Submit(peer_, BatchCopies(t, i), absl::StrCat("t", t, "-", i));
        if (!id.ok()) {
          ADD_FAILURE() << id.status();
          ++failures;
          return;
        }
        inflight.push_back(*id);
        if (inflight.size() == 8) {
          if (absl::Status s = sender_.transport->Wait(inflight.front(), kDeadline); !s.ok()) {
            ADD_FAILURE() << s;
            ++failures;
          }
          inflight.erase(inflight.begin());
        }
      }
      for (TransferId id : inflight) {
        if (absl::Status s = sender_.transport->Wait(id, kDeadline); !s.ok()) {
          ADD_FAILURE() << s;
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);

  // Every notification once, each thread's in submit order.
  std::map<int, int> next;  // thread -> next expected batch
  int received = 0;
  const absl::Time deadline = absl::Now() + kDeadline;
  while (received < kThreads * kBatches && absl::Now() < deadline) {
    for (const Notification& n : receiver_.transport->TakeNotifications()) {
      EXPECT_EQ(n.sender, "prefill");
      std::vector<std::string> parts = absl::StrSplit(n.message.substr(1), '-');
      int t = -1, i = -1;
      ASSERT_EQ(parts.size(), 2u) << n.message;
      ASSERT_TRUE(absl::SimpleAtoi(parts[0], &t) && absl::SimpleAtoi(parts[1], &i)) << n.message;
      EXPECT_EQ(i, next[t]) << "thread " << t << ": notification " << n.message << " out of order";
      EXPECT_EQ(MismatchedFragments(*sender_.cache, *receiver_.cache, BatchCopies(t, i)), 0)
          << n.message << " arrived before its data";
      next[t] = i + 1;
      ++received;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(received, kThreads * kBatches);
  EXPECT_EQ(receiver_.transport->WaitForNotification("t0-0", absl::Milliseconds(100)).code(),
            absl::StatusCode::kDeadlineExceeded)
      << "a notification came twice";
  EXPECT_EQ(receiver_.transport->counters().notifications_received,
            static_cast<uint64_t>(kThreads * kBatches));
  const TransportCounters sent = sender_.transport->counters();
  EXPECT_EQ(sent.batches_completed, static_cast<uint64_t>(kThreads * kBatches));
  EXPECT_EQ(sent.batches_failed, 0u);

  std::vector<BlockId> written;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kBatches; ++i) {
      for (const BlockCopy& c : BatchCopies(t, i)) written.push_back(c.dst);
    }
  }
  EXPECT_EQ(DirtyBlocksOutside(*receiver_.cache, written), 0);
}

// One thread, one batch at a time: each notification is there when Wait returns, and its
// batch's bytes are in place when it arrives (later batches write other blocks).
TEST_P(UcxSubmitTest, EachBatchIsCompleteAndAnnouncedAfterItsDataWhenWaitReturns) {
  for (int i = 0; i < 16; ++i) {
    const uint32_t blocks = i % 4 == 3 ? 8 : 1;
    std::vector<BlockCopy> copies;
    for (uint32_t b = 0; b < blocks; ++b) {
      copies.push_back({(i + b) % kSenderBlocks, static_cast<BlockId>(i * 8 + b)});
    }
    absl::StatusOr<TransferId> id = sender_.transport->Submit(peer_, copies, absl::StrCat("one-", i));
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_TRUE(sender_.transport->Wait(*id, kDeadline).ok());
    absl::StatusOr<TransferStats> stats = sender_.transport->Stats(*id);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->bytes, blocks * kBlockBytes);
    ASSERT_TRUE(receiver_.transport->WaitForNotification(absl::StrCat("one-", i), kDeadline).ok())
        << "one-" << i;
    EXPECT_EQ(MismatchedFragments(*sender_.cache, *receiver_.cache, copies), 0) << "batch " << i;
  }
  EXPECT_TRUE(receiver_.transport->TakeNotifications().empty());
}

std::vector<BackendCase> UcxBackends() {
  std::vector<BackendCase> ucx;
  for (const BackendCase& c : AllBackends()) {
    if (c.backend == "ucx") ucx.push_back(c);
  }
  return ucx;
}

INSTANTIATE_TEST_SUITE_P(
    Ucx, UcxSubmitTest,
    ::testing::Combine(::testing::ValuesIn(UcxBackends()),
                       // 8-block batches (512 KiB) above / below each threshold; streaming
                       // applies where UCX maps the peer's pool (posix, and cma,posix whose
                       // pools UCX allocated through posix), not over tcp.
                       ::testing::Values(InlineCase{"0", "1073741824", "ProgressThreadOnly"},
                                         InlineCase{"131072", "1073741824", "InlineSmall"},
                                         InlineCase{"1073741824", "1073741824", "InlineAll"},
                                         InlineCase{"131072", "131072", "StreamLarge"},
                                         InlineCase{"1073741824", "0", "StreamAllInline"})),
    [](const auto& info) {
      return std::get<0>(info.param).name + "_" + std::get<1>(info.param).name;
    });

}  // namespace
}  // namespace pdserve::transfer::testing
