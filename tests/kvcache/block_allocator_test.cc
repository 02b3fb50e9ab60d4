#include "kvcache/block_allocator.h"

#include <random>
#include <set>

#include "gtest/gtest.h"

namespace pdserve {
namespace {

TEST(BlockAllocatorTest, AllocateReturnsDistinctInRangeBlocks) {
  BlockAllocator a(10);
  absl::StatusOr<std::vector<BlockId>> got = a.Allocate(7);
  ASSERT_TRUE(got.ok());
  std::set<BlockId> unique(got->begin(), got->end());
  EXPECT_EQ(unique.size(), 7u);
  EXPECT_LT(*unique.rbegin(), 10u);
  EXPECT_EQ(a.num_free(), 3u);
}

TEST(BlockAllocatorTest, FreshPoolHandsOutAscendingContiguousBlocks) {
  BlockAllocator a(8);
  EXPECT_EQ(*a.Allocate(4), (std::vector<BlockId>{0, 1, 2, 3}));
}

TEST(BlockAllocatorTest, AllocateFailsWholeWhenTooFewBlocks) {
  BlockAllocator a(4);
  ASSERT_TRUE(a.Allocate(3).ok());
  absl::StatusOr<std::vector<BlockId>> got = a.Allocate(2);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(got.status().message().find("need 2 blocks, 1 free of 4"), std::string::npos);
  EXPECT_EQ(a.num_free(), 1u);
}

TEST(BlockAllocatorTest, FreeReturnsBlocksToPool) {
  BlockAllocator a(4);
  std::vector<BlockId> got = *a.Allocate(4);
  ASSERT_TRUE(a.Free(got).ok());
  EXPECT_EQ(a.num_free(), 4u);
  EXPECT_TRUE(a.CheckAllFree().ok());
}

TEST(BlockAllocatorTest, DoubleFreeIsFailedPreconditionAndChangesNothing) {
  BlockAllocator a(4);
  std::vector<BlockId> got = *a.Allocate(2);
  ASSERT_TRUE(a.Free({&got[0], 1}).ok());
  EXPECT_EQ(a.Free(got).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.RefCount(got[1]), 1u);
  EXPECT_EQ(a.num_free(), 3u);
}

TEST(BlockAllocatorTest, FreeingSameBlockTwiceInOneCallIsRejected) {
  BlockAllocator a(4);
  std::vector<BlockId> got = *a.Allocate(1);
  std::vector<BlockId> twice = {got[0], got[0]};
  EXPECT_EQ(a.Free(twice).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.RefCount(got[0]), 1u);
}

TEST(BlockAllocatorTest, OutOfRangeBlockIsInvalidArgument) {
  BlockAllocator a(4);
  std::vector<BlockId> bad = {17};
  EXPECT_EQ(a.Free(bad).code(), absl::StatusCode::kInvalidArgument);
}

TEST(BlockAllocatorTest, SharedBlockReturnsOnlyAfterLastReference) {
  BlockAllocator a(2);
  std::vector<BlockId> got = *a.Allocate(1);
  ASSERT_TRUE(a.AddRef(got).ok());
  EXPECT_EQ(a.RefCount(got[0]), 2u);
  ASSERT_TRUE(a.Free(got).ok());
  EXPECT_EQ(a.num_free(), 1u);
  ASSERT_TRUE(a.Free(got).ok());
  EXPECT_EQ(a.num_free(), 2u);
}

TEST(BlockAllocatorTest, AddRefOnFreeBlockIsRejected) {
  BlockAllocator a(2);
  std::vector<BlockId> free_block = {1};
  EXPECT_EQ(a.AddRef(free_block).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(BlockAllocatorTest, CheckAllFreeNamesLeakedBlocks) {
  BlockAllocator a(8);
  std::vector<BlockId> got = *a.Allocate(2);
  absl::Status s = a.CheckAllFree();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("2 of 8"), std::string::npos);
  EXPECT_NE(s.message().find("0(ref 1)"), std::string::npos);
}

// Property: after any random sequence of allocate / share / release, the books balance at
// every step, and releasing every reference leaves the whole pool free.
TEST(BlockAllocatorTest, RandomAllocFreeSequencesNeverLeak) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    BlockAllocator a(64);
    std::vector<std::vector<BlockId>> held;  // one entry per reference set
    for (int step = 0; step < 500; ++step) {
      const int op = rng() % 3;
      if (op == 0) {
        const uint32_t n = rng() % 12;
        const uint32_t before = a.num_free();
        absl::StatusOr<std::vector<BlockId>> got = a.Allocate(n);
        if (n <= before) {
          ASSERT_TRUE(got.ok());
          ASSERT_EQ(a.num_free(), before - n);
          held.push_back(*got);
        } else {
          ASSERT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted);
          ASSERT_EQ(a.num_free(), before);
        }
      } else if (op == 1 && !held.empty()) {
        const std::vector<BlockId>& share = held[rng() % held.size()];
        ASSERT_TRUE(a.AddRef(share).ok());
        held.push_back(share);
      } else if (!held.empty()) {
        const size_t i = rng() % held.size();
        ASSERT_TRUE(a.Free(held[i]).ok());
        held.erase(held.begin() + i);
      }
      std::vector<uint32_t> expected(64, 0);
      for (const auto& set : held)
        for (BlockId b : set) ++expected[b];
      uint32_t used = 0;
      for (BlockId b = 0; b < 64; ++b) {
        ASSERT_EQ(a.RefCount(b), expected[b]) << "seed " << seed << " step " << step;
        used += expected[b] > 0;
      }
      ASSERT_EQ(a.num_free(), 64 - used);
    }
    for (const auto& set : held) ASSERT_TRUE(a.Free(set).ok());
    EXPECT_TRUE(a.CheckAllFree().ok()) << "seed " << seed;
  }
}

// A request's blocks come out contiguous and ascending wherever the pool allows, so that its
// transfer coalesces: after a free in the middle, the next allocation fills that hole first.
TEST(BlockAllocatorTest, ReusedBlocksComeBackLowestFirstInAscendingOrder) {
  BlockAllocator a(64);
  auto first = *a.Allocate(8);   // 0..7
  ASSERT_TRUE(a.Allocate(8).ok());  // 8..15
  ASSERT_TRUE(a.Free(first).ok());
  EXPECT_EQ(*a.Allocate(8), std::vector<BlockId>({0, 1, 2, 3, 4, 5, 6, 7}));
  ASSERT_TRUE(a.Free(std::vector<BlockId>{10, 9, 11}).ok());
  // One block fills the lowest hole; a run that fits in the hole takes the hole.
  EXPECT_EQ(*a.Allocate(1), std::vector<BlockId>({9}));
  EXPECT_EQ(*a.Allocate(2), std::vector<BlockId>({10, 11}));
  EXPECT_EQ(a.num_free(), 64u - 8 - 8);
}

// A request's blocks form one run wherever a long enough run is free, even above a hole: a
// transfer then moves them in one operation per layer instead of one per piece.
TEST(BlockAllocatorTest, PrefersTheLowestFreeRunOverScatteredHoles) {
  BlockAllocator a(64);
  ASSERT_TRUE(a.Allocate(4).ok());  // 0..3
  auto hole = *a.Allocate(3);    // 4..6
  ASSERT_TRUE(a.Allocate(2).ok());  // 7..8
  ASSERT_TRUE(a.Free(hole).ok());
  EXPECT_EQ(*a.Allocate(5), std::vector<BlockId>({9, 10, 11, 12, 13}));
  EXPECT_EQ(*a.Allocate(3), std::vector<BlockId>({4, 5, 6}));
}

TEST(BlockAllocatorTest, WithoutALongEnoughRunFallsBackToLowestFree) {
  BlockAllocator a(8);
  ASSERT_TRUE(a.Allocate(8).ok());
  ASSERT_TRUE(a.Free(std::vector<BlockId>{1, 2, 5, 7}).ok());
  EXPECT_EQ(*a.Allocate(3), std::vector<BlockId>({1, 2, 5}));
  EXPECT_EQ(a.num_free(), 1u);
}

TEST(BlockAllocatorTest, RunsCrossWordBoundaries) {
  BlockAllocator a(200);
  auto low = *a.Allocate(60);   // 0..59
  auto run = *a.Allocate(100);  // 60..159, across two words
  ASSERT_EQ(run.front(), 60u);
  ASSERT_EQ(run.back(), 159u);
  ASSERT_TRUE(a.Free(low).ok());
  ASSERT_TRUE(a.Free(std::vector<BlockId>{60, 61, 62, 63, 64, 65}).ok());
  auto got = *a.Allocate(66);   // 0..65: a run across the word boundary
  EXPECT_EQ(got.front(), 0u);
  EXPECT_EQ(got.back(), 65u);
}

}  // namespace
}  // namespace pdserve
