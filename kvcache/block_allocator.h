#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kvcache/kv_layout.h"

namespace pdserve {

// Hands out fixed-size KV blocks of one pool. Allocation is all-or-nothing; blocks carry
// reference counts so that a shared prefix can be held by several requests; a block returns to
// the free list when its count drops to zero. Thread-safe.
class BlockAllocator {
 public:
  explicit BlockAllocator(uint32_t num_blocks);

  // `n` fresh blocks with ref count 1, or ResourceExhausted with nothing taken.
  absl::StatusOr<std::vector<BlockId>> Allocate(uint32_t n);
  // Adds one reference to each block; FailedPrecondition (and no change) if any is free.
  absl::Status AddRef(std::span<const BlockId> blocks);
  // Drops one reference from each block; FailedPrecondition (and no change) if any is free or
  // out of range, or a block appears more often than its count.
  absl::Status Free(std::span<const BlockId> blocks);

  uint32_t num_blocks() const { return static_cast<uint32_t>(ref_counts_.size()); }
  uint32_t num_free() const;
  uint32_t RefCount(BlockId block) const;
  // OK when every block is back in the free list; otherwise names the leaked blocks.
  absl::Status CheckAllFree() const;

 private:
  absl::Status ValidateHeld(std::span<const BlockId> blocks, uint32_t min_extra) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<uint32_t> ref_counts_ ABSL_GUARDED_BY(mu_);
  // Stack of free ids; popped from the back, seeded so that a fresh pool hands out 0, 1, 2...
  std::vector<BlockId> free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pdserve
