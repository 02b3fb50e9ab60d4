// PeerOrder: batches that land out of order still end (and announce themselves) in entry order,
// and none announces itself behind a failed one.
#include "transfer/peer_order.h"

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve::transfer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A finish that records which batch announced itself, and returns `result`.
std::function<absl::Status()> Announce(std::vector<TransferId>& announced, TransferId id,
                                       absl::Status result = absl::OkStatus()) {
  return [&announced, id, result] {
    announced.push_back(id);
    return result;
  };
}

TEST(PeerOrderTest, ALaterBatchThatLandsFirstEndsOnlyAfterTheEarlierOnes) {
  BatchTable table(8);
  PeerOrder order;
  EXPECT_TRUE(order.Idle());
  std::vector<TransferId> ids, announced;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(*table.Begin(100, 1));
    order.Enter(ids.back());
  }
  EXPECT_FALSE(order.Idle());
  order.Landed(table, ids[2], Announce(announced, ids[2]));
  order.Landed(table, ids[1], Announce(announced, ids[1]));
  EXPECT_TRUE(announced.empty());
  EXPECT_FALSE(*table.Poll(ids[2]));
  EXPECT_FALSE(*table.Poll(ids[1]));
  order.Landed(table, ids[0], Announce(announced, ids[0]));
  EXPECT_THAT(announced, ElementsAre(ids[0], ids[1], ids[2]));
  for (TransferId id : ids) EXPECT_TRUE(table.Wait(id, absl::ZeroDuration()).ok());
  EXPECT_TRUE(order.Idle());
}

TEST(PeerOrderTest, EveryBatchBehindAFailedOneFailsUnannouncedNamingIt) {
  BatchTable table(8);
  PeerOrder order;
  std::vector<TransferId> ids, announced;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(*table.Begin(100, 1));
    order.Enter(ids.back());
  }
  order.Landed(table, ids[1], Announce(announced, ids[1]));
  order.Landed(table, ids[0],
               Announce(announced, ids[0], absl::UnavailableError("peer died mid-copy")));
  // ids[2] was entered while ids[0] was in flight: it fails too, even landing afterwards.
  order.Landed(table, ids[2], Announce(announced, ids[2]));
  EXPECT_THAT(announced, ElementsAre(ids[0]));
  EXPECT_EQ(table.Wait(ids[0], absl::ZeroDuration()).code(), absl::StatusCode::kUnavailable);
  for (TransferId id : {ids[1], ids[2]}) {
    const absl::Status s = table.Wait(id, absl::ZeroDuration());
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(s.message()),
                HasSubstr(absl::StrCat("KV batch ", ids[0], " to the same peer")));
    EXPECT_THAT(std::string(s.message()), HasSubstr("peer died mid-copy"));
  }
  // A batch entered after the failure ended is not tied to it.
  const TransferId after = *table.Begin(100, 1);
  order.Enter(after);
  order.Landed(table, after, Announce(announced, after));
  EXPECT_TRUE(table.Wait(after, absl::ZeroDuration()).ok());
  EXPECT_THAT(announced, ElementsAre(ids[0], after));
}

// Copy threads land batches in whatever order they finish: announcements still follow entry
// order exactly, and each batch is announced once.
TEST(PeerOrderTest, BatchesLandedFromManyThreadsAreAnnouncedInEntryOrder) {
  constexpr int kBatches = 2000;
  BatchTable table(kBatches);
  PeerOrder order;
  std::vector<TransferId> ids, announced;
  for (int i = 0; i < kBatches; ++i) {
    ids.push_back(*table.Begin(1, 1));
    order.Enter(ids.back());
  }
  std::vector<TransferId> shuffled = ids;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < shuffled.size(); i += 4) {
        // Finishes run one at a time (PeerOrder's promise): the vector needs no lock.
        order.Landed(table, shuffled[i], Announce(announced, shuffled[i]));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(announced, ids);
  EXPECT_TRUE(order.Idle());
  for (TransferId id : ids) EXPECT_TRUE(table.Wait(id, absl::ZeroDuration()).ok());
}

}  // namespace
}  // namespace pdserve::transfer
